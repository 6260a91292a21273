"""What counts as one variable in a template: one rule per test, on plain values."""

from __future__ import annotations

import re

import pytest

from workers.steps.templates import TemplateMiner, mask
from workers.steps.templates_masking import mask_tokens


def _same_as_tokens(line: str) -> str:
    """`mask(line)`, checked against the token-wise masking the miner uses."""
    masked = mask(line)
    tokens, key = mask_tokens(line)
    assert tokens == masked.split(), line
    assert key == re.sub(r"\d+", "<*>", " ".join(tokens)), line
    return masked


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        # a decimal number is one value (Loghub-2.0's DV convention); a version keeps its fields
        ("Running task 0.0 in stage 12.5 (TID 4)", "Running task <*> in stage <*> (TID <*>)"),
        ("Progress is : -0.023958297", "Progress is : <*>"),
        ("took 0.5.", "took <*>."),
        ("took 12.5ms", "took <*>ms"),
        ("klogd 1.4.1, log source", "klogd <*>.<*>.<*>, log source"),  # a version: three fields
        ("Linux version 2.6.5-1.358", "Linux version <*>.<*>.<*>-<*>.<*>"),
        ("HCI daemon ver v2.4 started", "HCI daemon ver v<*>.<*> started"),
        ("estimated size 5.2 KB, free 16K", "estimated size <*>, free <*>"),  # sizes keep their unit
        ("from 10.250.19.102:54106", "from <*>:<*>"),  # an address stays one value
    ],
)
def test_a_decimal_is_one_value_a_version_keeps_its_fields_a_size_its_unit(line: str, masked: str) -> None:
    assert _same_as_tokens(line) == masked


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("connection from 24.54.76.216 () at Fri Jun 17 07:07:00 2005",
         "connection from <*> () at <*>:<*>:<*>"),
        ("status=M Fri Jul 01 08:16:53 PDT 2005", "status=M <*>:<*>:<*>"),
        ("timed out at Jul  1 09:07:44 now", "timed out at <*>:<*>:<*> now"),
        ("started 09:07:44", "started <*>:<*>:<*>"),  # a clock alone masks alike
    ],
)
def test_a_timestamp_shows_the_fields_of_its_clock(line: str, masked: str) -> None:
    assert _same_as_tokens(line) == masked


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("Deleting block blk_-17819 file /mnt/hadoop/dfs/data/current/subdir5/blk_-17819",
         "Deleting block blk_<*> file /<*>/blk_<*>"),
        ("BLOCK* NameSystem.allocateBlock: /user/root/rand/_temporary/_task_2008_0001_m_000590_0/part-00590. "
         "blk_-1727", "BLOCK* NameSystem.allocateBlock: /<*>/part-<*>. blk_<*>"),
        ("rotated /var/log/app-2.log", "rotated /<*>/app-<*>.log"),
        # a file not numbered after its kind: the whole path is one value
        ("workerEnv.init() ok /etc/httpd/conf/workers2.properties", "workerEnv.init() ok <*>"),
        ("Reading snapshot /var/lib/zookeeper/version-2/snapshot.b00000084", "Reading snapshot <*>"),
        ("Created local directory at /opt/hdfs/appcache/application_1485_0147/blockmgr-70293f72-844a",
         "Created local directory at <*>"),
    ],
)
def test_a_file_numbered_after_its_kind_keeps_the_kind(line: str, masked: str) -> None:
    assert _same_as_tokens(line) == masked


def test_an_identifier_glued_with_underscores_is_one_value() -> None:
    miner = TemplateMiner()
    lines = [
        "Block rdd_42_3 stored as bytes in memory (estimated size 16.0 B, free 317.5 KB)",
        "Block broadcast_5_piece0 stored as bytes in memory (estimated size 5.2 KB, free 317.5 KB)",
        "Block rdd_7_1 stored as bytes in memory (estimated size 1.0 KB, free 310.0 KB)",
    ]
    matches = [miner.add(line) for line in lines]
    assert matches[-1].template == "Block <*> stored as bytes in memory (estimated size <*>, free <*>)"
    assert matches[-1].variables == ("rdd_7_1", "1.0 KB", "310.0 KB")
