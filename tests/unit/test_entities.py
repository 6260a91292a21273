"""Unit tests for workers/steps/entities.py on real lines (Loghub samples, hand-written set)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from spacy.matcher import Matcher
from spacy.tokens import Doc

from workers.steps.entities import LABELS, Entity, EntityExtractor, load_patterns, shape_of, split_tokens

REPO = Path(__file__).resolve().parents[2]
LOGHUB = REPO.parent / "shared" / "data" / "loghub"
HANDWRITTEN = REPO / "tests" / "data" / "ner_handwritten.jsonl"


@pytest.fixture(scope="module")
def extractor() -> EntityExtractor:
    return EntityExtractor()


def loghub_content(system: str) -> dict[int, str]:
    path = LOGHUB / system / f"{system}_2k.log_structured.csv"
    if not path.exists():
        pytest.fail(f"Loghub data missing: expected {path} (see ../shared/data/README.md)")
    with path.open(encoding="utf-8") as handle:
        return {int(row["LineId"]): row["Content"] for row in csv.DictReader(handle)}


def handwritten_line(line_id: int) -> str:
    for line in HANDWRITTEN.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["LineId"] == line_id:
            return str(record["text"])
    raise AssertionError(f"no hand-written line {line_id}")


def found(entities: list[Entity]) -> set[tuple[str, str]]:
    return {(e.label, e.text) for e in entities}


# (system, LineId, label, entity text): every label on a real Loghub line
LOGHUB_CASES = [
    ("HDFS", 1439, "IP", "10.250.14.38"),
    ("HDFS", 1439, "PORT", "37362"),
    ("HDFS", 857, "PATH", "/mnt/hadoop/dfs/data/current/subdir42/blk_3733339790842827121"),
    ("OpenSSH", 1, "HOST", "ns.marryaldkfaczcz.com"),
    ("OpenSSH", 956, "USER", "fztu"),
    ("OpenSSH", 965, "SERVICE", "sshd"),
    ("OpenSSH", 1391, "ERROR_CODE", "11"),
    ("Spark", 42, "URL", "hdfs://10.10.34.11:9000/pjhe/logs/2kSOSP.log"),
    ("Spark", 11, "SERVICE", "sparkExecutorActorSystem"),
    ("Hadoop", 56, "HOST", "msra-sa-41"),
    ("Hadoop", 1022, "EXCEPTION", "java.net.NoRouteToHostException"),
    ("Zookeeper", 514, "REQUEST_ID", "0x14ed93111f2005d"),
    ("Linux", 1910, "PATH", "/proc/kmsg"),
    ("BGL", 1764, "ERROR_CODE", "0"),
]


@pytest.mark.parametrize(("system", "line_id", "label", "text"), LOGHUB_CASES)
def test_label_found_on_loghub_line(
    extractor: EntityExtractor, system: str, line_id: int, label: str, text: str
) -> None:
    line = loghub_content(system)[line_id]
    assert (label, text) in found(extractor.extract(line)), line


# Labels that Loghub does not contain: realistic Kubernetes / database / HTTP lines.
HANDWRITTEN_CASES = [
    (2, "K8S_POD", "payments-api-7f9c8b6d4-2xlqz"),
    (2, "K8S_NAMESPACE", "payments"),
    (2, "REQUEST_ID", "9b1f6c2e-5d4a-4c3b-9a8e-7f6d5c4b3a21"),
    (11, "HTTP_STATUS", "200"),
    (21, "DATABASE", "analytics"),
    (26, "ERROR_CODE", "ORA-12541"),
    (28, "EXCEPTION", "redis.exceptions.ConnectionError"),
]


@pytest.mark.parametrize(("line_id", "label", "text"), HANDWRITTEN_CASES)
def test_label_found_on_handwritten_line(
    extractor: EntityExtractor, line_id: int, label: str, text: str
) -> None:
    assert (label, text) in found(extractor.extract(handwritten_line(line_id)))


def test_every_label_is_covered_by_a_case() -> None:
    covered = {case[2] for case in LOGHUB_CASES} | {case[1] for case in HANDWRITTEN_CASES}
    assert covered == set(LABELS)


def test_offsets_point_at_the_entity_text(extractor: EntityExtractor) -> None:
    lines = list(loghub_content("Hadoop").values())[:300]
    for line, entities in zip(lines, extractor.extract_batch(lines), strict=True):
        for entity in entities:
            assert line[entity.start : entity.end] == entity.text


def test_shape_mask_keeps_length_and_groups_lines() -> None:
    a = "Accepted password for fztu from 119.137.62.142 port 49116 ssh2"
    b = "Accepted password for fztu from 119.137.62.143 port 49117 ssh2"
    assert len(shape_of(a)) == len(a)
    assert shape_of(a) == shape_of(b)
    assert "neo4j" in shape_of("connected to neo4j at 10.0.0.1")  # digits inside words stay


def test_cache_shares_a_shape_but_maps_each_lines_own_text() -> None:
    extractor = EntityExtractor()
    first, second = extractor.extract_batch(
        [
            "Received block blk_1 of size 67108864 from /10.251.42.84",
            "Received block blk_2 of size 67108865 from /10.251.42.85",
        ]
    )
    assert extractor.cache_misses == 1 and extractor.cache_hits == 1
    assert found(first) == {("IP", "10.251.42.84")}
    assert found(second) == {("IP", "10.251.42.85")}


def test_variables_of_different_lengths_get_correct_offsets() -> None:
    extractor = EntityExtractor()
    short = "Failed password for root from 5.3.9.7 port 22 ssh2"
    long = "Failed password for administrator from 187.141.143.180 port 47004 ssh2"
    by_label = [{e.label: (e.start, e.end, e.text) for e in ents} for ents in
                extractor.extract_batch([short, long])]  # fmt: skip
    assert by_label[0]["IP"] == (30, 37, "5.3.9.7")
    assert by_label[0]["PORT"] == (43, 45, "22")
    assert by_label[1]["USER"] == (20, 33, "administrator")
    assert by_label[1]["IP"] == (39, 54, "187.141.143.180")
    assert by_label[1]["PORT"] == (60, 65, "47004")
    # value checks run on the real digits even when the shape was cached
    bad, good = extractor.extract_batch(["connect to 999.1.1.1:80", "connect to 199.1.1.1:80"])
    assert ("IP", "999.1.1.1") not in found(bad)
    assert ("IP", "199.1.1.1") in found(good)


def test_cached_and_uncached_results_are_identical() -> None:
    lines = []
    for system in ("HDFS", "OpenSSH", "Zookeeper", "Hadoop", "BGL"):
        lines.extend(list(loghub_content(system).values())[:400])
    cached = EntityExtractor(cache_size=64)  # small: evictions happen too
    uncached = EntityExtractor(cache_size=0)
    batched = [e for i in range(0, len(lines), 97) for e in cached.extract_batch(lines[i : i + 97])]
    assert batched == uncached.extract_batch(lines)
    assert cached.cache_hits > 0


def test_batch_api_keeps_order_and_handles_empty_lines(extractor: EntityExtractor) -> None:
    lines = ["", "Connection closed by 173.234.31.186 [preauth]", "   ", "no entities here"]
    result = extractor.extract_batch(lines)
    assert len(result) == 4
    assert result[0] == [] and result[2] == [] and result[3] == []
    assert result[1] == [Entity("IP", "173.234.31.186", 21, 35)]
    assert extractor.extract_batch([]) == []


def test_lines_of_one_class_sequence_share_ruler_runs() -> None:
    extractor = EntityExtractor()
    # Different masks (octet lengths, user names), one sequence of token classes.
    lines = ["Failed password for fztu from 5.3.9.7 port 22 ssh2",
             "Failed password for bob from 187.141.143.180 port 47 ssh2"]
    (short,) = extractor.extract_batch(lines[:1])
    runs = extractor.ruler_runs
    (long,) = extractor.extract_batch(lines[1:])
    assert extractor.cache_misses == 2 and extractor.ruler_runs == runs  # no run for the second
    assert found(short) == {("USER", "fztu"), ("IP", "5.3.9.7"), ("PORT", "22")}
    assert found(long) == {("USER", "bob"), ("IP", "187.141.143.180"), ("PORT", "47")}
    for line, entities in zip(lines, (short, long), strict=True):
        assert all(line[e.start : e.end] == e.text for e in entities)


def test_words_of_one_class_satisfy_the_same_spacy_predicates(extractor: EntityExtractor) -> None:
    """The premise of sharing ruler runs, checked against spaCy itself: every token predicate
    of the patterns, as a one-token Matcher pattern, matches all words of a class or none."""
    specs: dict[str, dict[str, object]] = {}
    for entry in load_patterns():
        pattern = entry["pattern"]
        tokens = ([{"ORTH": token.text} for token in extractor.nlp.make_doc(pattern)]
                  if isinstance(pattern, str) else pattern)
        for token in tokens:
            spec = {key: value for key, value in token.items() if key not in ("OP", "SPACY")}
            specs[json.dumps(spec, sort_keys=True)] = spec
    matcher = Matcher(extractor.nlp.vocab)
    for index, spec in enumerate(specs.values()):
        matcher.add(f"spec{index}", [[spec]])
    texts = [line for system in ("HDFS", "OpenSSH", "Hadoop", "Zookeeper", "Spark", "BGL", "Linux", "Apache")
             for line in loghub_content(system).values()]
    texts += [json.loads(line)["text"] for line in HANDWRITTEN.read_text(encoding="utf-8").splitlines()]
    words = sorted({word for text in texts for masked in (text, shape_of(text))
                    for word in split_tokens(masked)[0]})
    words += ["Port", "PORT", "USER", "user", "  ", "\t", "DataNode", "datanode", "neo4j"]
    doc = Doc(extractor.nlp.vocab, words=words, spaces=[True] * len(words))
    matched: dict[int, set[int]] = {i: set() for i in range(len(words))}
    for match_id, start, _ in matcher(doc):
        matched[start].add(match_id)
    by_class: dict[int, tuple[str, set[int]]] = {}
    for index, word in enumerate(words):
        class_id = extractor._classes.key([word], [False])[0] >> 1
        first_word, first_matched = by_class.setdefault(class_id, (word, matched[index]))
        assert matched[index] == first_matched, (word, first_word)
    assert len(by_class) < len(words) / 5  # and classes are really shared


def test_a_predicate_not_understood_makes_every_word_its_own_class(tmp_path: Path) -> None:
    patterns = tmp_path / "patterns.jsonl"
    patterns.write_text(
        json.dumps({"label": "PORT", "pattern": [{"LOWER": "port"}, {"LENGTH": 2}], "keep": [1, 2]}) + "\n"
        + json.dumps({"label": "IP", "pattern": [{"TEXT": {"REGEX": r"^\d{1,3}(\.\d{1,3}){3}$"}}],
                      "check": "ipv4"}) + "\n", encoding="utf-8")
    extractor = EntityExtractor(patterns_path=patterns)
    assert extractor._classes.exact
    short, long = extractor.extract_batch(["from 5.3.9.7 port 22", "from 10.3.9.7 port 220"])
    assert found(short) == {("IP", "5.3.9.7"), ("PORT", "22")}
    assert found(long) == {("IP", "10.3.9.7")}  # LENGTH 2 does not admit "220"


def test_pieces_split_only_where_no_match_can_cross(extractor: EntityExtractor) -> None:
    line = "Received block blk_1 of size 67108864 from /10.251.42.84 port 50010 user=root"
    words, spaces = split_tokens(shape_of(line))
    pieces = extractor._joins.pieces(extractor._classes.key(words, spaces))
    assert len(pieces) > 1
    starts = [first for first, _ in pieces]
    # "port" and its number, "user" "=" "root" each stay within one piece
    for word, after in (("port", 1), ("user", 2)):
        at = words.index(word)
        assert not any(at < start <= at + after for start in starts), (word, starts)
    assert found(extractor.extract(line)) == {("IP", "10.251.42.84"), ("PORT", "50010"), ("USER", "root")}
