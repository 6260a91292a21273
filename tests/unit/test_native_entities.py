"""Parity of the native warm path of the entities step (`polaris_native.EntityPlans`) with
`workers.steps.entities.EntityExtractor.extract_batch`: shapes, the shape -> plan cache,
value checks, overlap resolution and code-point offsets.

`NativeEntityExtractor` below is the glue: spaCy still plans new shapes (the private
`EntityExtractor._plan`, whose `_ShapePlan.candidates` are handed over), everything per
line runs natively.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import polaris_native
import pytest

from workers.pipeline_native import Reference
from workers.steps.entities import Entity, EntityExtractor, shape_of
from workers.steps.parse import default_parser
from workers.steps.redact import default_rules

REPO = Path(__file__).resolve().parents[2]
LOGHUB = REPO.parent / "shared" / "data" / "loghub"
HANDWRITTEN = REPO / "tests" / "data" / "ner_handwritten.jsonl"
NER_LABELLED = REPO / "tests" / "data" / "ner_labelled.jsonl"
BATCH = 1000


class NativeEntityExtractor:
    """`EntityExtractor.extract_batch` with the per-line work in Rust.

    Known shapes never enter Python; the distinct unknown shapes of a batch go to spaCy
    once (the reference's `_plan`, or a full pipeline run per shape when caching is off,
    as `_lookup` does), and their candidates are cached natively.
    """

    def __init__(self, extractor: EntityExtractor | None = None, shared_entities: int = 65_536) -> None:
        self.python = extractor or EntityExtractor()
        # Entity is frozen: equal entities may share one instance (up to shared_entities kept).
        self.plans = polaris_native.EntityPlans(
            self.python._priority, self.python.cache_size, Entity, shared_entities=shared_entities
        )
        # What the chain hands spaCy: the candidates of the shapes no plan is cached for.
        self._plan = Reference(default_parser(), default_rules(), self.python).plan

    def extract_batch(self, texts: Sequence[str]) -> list[list[Entity]]:
        found: list[list[Entity]] = self.plans.extract_batch(list(texts), self._plan)
        return found

    def clear_cache(self) -> None:
        self.plans.clear()
        self.python.clear_cache()


# --- inputs ---------------------------------------------------------------------------


def loghub_mix_messages() -> list[str]:
    from workers.bench.process import loghub_mix
    from workers.steps.parse import parse_line

    lines = loghub_mix(LOGHUB, 20000)
    return [parse_line(line.decode("utf-8", "replace")).message for line in lines]


def loghub_contents() -> list[str]:
    texts: list[str] = []
    for path in sorted(LOGHUB.glob("*/*_2k.log_structured.csv")):
        with path.open(encoding="utf-8") as handle:
            texts.extend(row["Content"] for row in csv.DictReader(handle))
    return texts


def ner_eval_texts() -> list[str]:
    return [json.loads(line)["text"] for line in NER_LABELLED.read_text(encoding="utf-8").splitlines() if line]


def unit_test_texts() -> list[str]:
    """The lines tests/unit/test_entities.py feeds the extractor (beyond the Loghub files)."""
    texts = [json.loads(line)["text"] for line in HANDWRITTEN.read_text(encoding="utf-8").splitlines() if line]
    return [
        *texts,
        "Received block blk_1 of size 67108864 from /10.251.42.84",
        "Received block blk_2 of size 67108865 from /10.251.42.85",
        "Failed password for root from 5.3.9.7 port 22 ssh2",
        "Failed password for administrator from 187.141.143.180 port 47004 ssh2",
        "connect to 999.1.1.1:80", "connect to 199.1.1.1:80",
        "", "Connection closed by 173.234.31.186 [preauth]", "   ", "no entities here",
        "Failed password for fztu from 5.3.9.7 port 22 ssh2",
        "Failed password for bob from 187.141.143.180 port 47 ssh2",
        "from 5.3.9.7 port 22", "from 10.3.9.7 port 220",
        "Received block blk_1 of size 67108864 from /10.251.42.84 port 50010 user=root",
        "Accepted password for fztu from 119.137.62.142 port 49116 ssh2",
        "connected to neo4j at 10.0.0.1",
    ]  # fmt: skip


def edge_texts() -> list[str]:
    """Value checks at their bounds, other scripts' digits, non-ASCII before offsets."""
    return [
        "from 255.255.255.255 port 65535", "from 256.1.1.1 port 65536", "from 0.0.0.0 port 0",
        "host 10.0.0.1:0 and 10.0.0.1:1 and 10.0.0.1:99999", "GET /api/v1/x HTTP/1.1\" 599 12",
        "status=99 status=100 status=600 code 404", "HTTP/1.1 200 OK", "HTTP/1.1 999 Nope",
        "from \u0661\u0662\u0663.\u0661.\u0661.\u0661 port \u0662\u0662 ssh2",  # Arabic-Indic digits
        "from \u0663\u0660\u0660.\u0661.\u0661.\u0661 port \u0667\u0660\u0660\u0660\u0660",
        "port \uff10\uff10\uff18\uff10 ok",  # full-width digits
        "héllo wörld from 10.1.2.3 port 8080 user=jöhn", "🚀 connect to db.example.com:5432 ✓",
        "naïve 0xDEADbeef 0x1F session deadbeef12 cafe babe12345 a1b2c3d4e5f6",
        "pod=\"kube-system/coredns-5d78c9869d-x7kqp\" kubectl get pod/web-1",
        "Input split: hdfs://10.10.34.11:9000/pjhe/logs/2kSOSP.log:0+7292 done",
        "Input split: hdfs://10.10.34.11:9000/pjhe/logs/2kSOSP.log:\u0661+\u0662 done",
        "url http://ünïcode.example.com/päth?q=1 and /var/log/ünïcode/x.log",
        "java.lang.NullPointerException at 10.0.0.1:8080 user=root\tport=22",
        "tabs\tand  double  spaces 10.0.0.1   port   22", "trailing newline 10.0.0.1 port 22\n",
    ] + [  # the digits of every script (Python's \d and int()), at the value checks' bounds
        line.translate({ord(str(k)): zero + k for k in range(10)})
        for zero in sorted({ord(c) - int(c) for c in map(chr, range(0x110000)) if c.isdecimal()})
        for line in ("from 255.0.10.1 port 65535", "from 256.0.10.1 port 0", "port 80 HTTP/1.1 599 x")
    ]  # fmt: skip


def python_reference(texts: Sequence[str], extractor: EntityExtractor) -> list[list[Entity]]:
    return [entities for i in range(0, len(texts), BATCH) for entities in extractor.extract_batch(texts[i : i + BATCH])]


def assert_same(texts: Sequence[str], expected: list[list[Entity]], actual: list[list[Entity]]) -> None:
    assert len(actual) == len(expected)
    differing = [(text, want, got) for text, want, got in zip(texts, expected, actual, strict=True) if want != got]
    shown = "\n".join(f"  {text!r}\n    python: {want}\n    native: {got}" for text, want, got in differing[:5])
    assert not differing, f"{len(differing)} of {len(texts)} lines differ, first ones:\n{shown}"


DATASETS = {
    "loghub_mix_20k": loghub_mix_messages,
    "loghub_structured_content": loghub_contents,
    "ner_eval_set": ner_eval_texts,
    "unit_test_inputs": unit_test_texts,
    "edge_cases": edge_texts,
}


@pytest.fixture(scope="module", params=list(DATASETS))
def dataset(request: pytest.FixtureRequest) -> tuple[list[str], list[list[Entity]]]:
    texts = DATASETS[request.param]()
    return texts, python_reference(texts, EntityExtractor())


# --- parity ---------------------------------------------------------------------------


def test_shapes_match(dataset: tuple[list[str], list[list[Entity]]]) -> None:
    texts, _ = dataset
    native = polaris_native.entity_shapes(texts)
    differing = [(text, shape_of(text), got) for text, got in zip(texts, native, strict=True) if shape_of(text) != got]
    assert not differing, differing[:5]


def test_entities_match_cold_then_warm(dataset: tuple[list[str], list[list[Entity]]]) -> None:
    texts, expected = dataset
    native = NativeEntityExtractor()
    cold = python_reference(texts, native)  # type: ignore[arg-type]
    assert_same(texts, expected, cold)
    misses = native.plans.cache_misses
    warm = python_reference(texts, native)  # type: ignore[arg-type]
    assert native.plans.cache_misses == misses  # the second pass is all hits
    assert_same(texts, expected, warm)


def test_entities_match_with_evictions_and_without_cache(dataset: tuple[list[str], list[list[Entity]]]) -> None:
    texts, expected = dataset
    texts, expected = texts[:3000], expected[:3000]
    small = NativeEntityExtractor(EntityExtractor(cache_size=64))
    assert_same(texts, expected, [e for i in range(0, len(texts), 97) for e in small.extract_batch(texts[i : i + 97])])
    assert len(small.plans) <= 64
    uncached = NativeEntityExtractor(EntityExtractor(cache_size=0))
    assert_same(texts, expected, uncached.extract_batch(texts))
    assert len(uncached.plans) == 0


@pytest.mark.parametrize("shared_entities", [0, 5])
def test_entities_match_with_few_or_no_shared_entity_objects(shared_entities: int) -> None:
    texts = loghub_contents()[::7]
    expected = python_reference(texts, EntityExtractor())
    native = NativeEntityExtractor(shared_entities=shared_entities)
    for _ in range(2):
        assert_same(texts, expected, python_reference(texts, native))  # type: ignore[arg-type]


def test_lone_surrogates_fail_in_both() -> None:
    texts = ["from 10.0.0.1 \ud800 port 22", "from 10.0.0.2 port 23"]
    with pytest.raises(UnicodeEncodeError):  # spaCy cannot store the shape's words
        EntityExtractor().extract_batch(texts)
    with pytest.raises(UnicodeEncodeError):  # no UTF-8 view of the line
        NativeEntityExtractor().extract_batch(texts)


def test_counters_and_lru_order_follow_the_reference() -> None:
    lines = [f"line {word} from 10.0.0.1" for word in ("a", "b", "c", "a", "d", "b", "e", "a")]
    python = EntityExtractor(cache_size=3)
    native = NativeEntityExtractor(EntityExtractor(cache_size=3))
    for batch in ([lines[0], lines[1], lines[0]], lines[2:5], lines[5:]):
        assert native.extract_batch(batch) == python.extract_batch(batch)
        assert (native.plans.cache_hits, native.plans.cache_misses) == (python.cache_hits, python.cache_misses)
        assert [shape in native.plans for shape in python._cache] == [True] * len(python._cache)
        assert len(native.plans) == len(python._cache)


def test_tuples_without_an_entity_type() -> None:
    python = EntityExtractor()
    plans = polaris_native.EntityPlans(python._priority, python.cache_size)
    texts = unit_test_texts()
    plan = Reference(default_parser(), default_rules(), python).plan
    expected = [[(e.label, e.text, e.start, e.end) for e in line] for line in EntityExtractor().extract_batch(texts)]
    assert plans.extract_batch(texts, plan) == expected


def test_insert_then_known_shapes_never_call_the_planner() -> None:
    python = EntityExtractor()
    plans = polaris_native.EntityPlans(python._priority, 100, Entity)
    line = "Failed password for root from 5.3.9.7 port 22 ssh2"
    shape = shape_of(line)
    plans.insert(shape, python._plan([shape])[shape].candidates)

    def no_planner(shapes: list[str]) -> None:
        raise AssertionError(shapes)

    other = "Failed password for root from 8.8.4.4 port 23 ssh2"
    assert plans.extract_batch([line, other], no_planner) == python.extract_batch([line, other])


def test_errors_match_the_reference_exception_types() -> None:
    python = EntityExtractor()
    plans = polaris_native.EntityPlans(python._priority, 100, Entity)
    with pytest.raises(KeyError, match="no_such_check"):
        plans.insert("x", [("IP", 0, 1, "no_such_check")])
    with pytest.raises(ValueError, match="same priority"):
        polaris_native.EntityPlans({"A": 0, "B": 0}, 10)
    # A user pattern whose value check meets a non-number: int() raises in both.
    plans.insert("port abc", [("PORT", 5, 8, "port")])
    with pytest.raises(ValueError, match=r"invalid literal for int\(\) with base 10: 'abc'"):
        plans.extract_batch(["port abc"], lambda shapes: [[] for _ in shapes])
    # A label missing from the priorities fails like _resolve_overlaps' KeyError.
    plans.insert("pod a/b", [("K8S_POD", 4, 7, "k8s_namespace_pod")])
    unranked = polaris_native.EntityPlans({"K8S_POD": 0}, 10)
    unranked.insert("pod a/b", [("K8S_POD", 4, 7, "k8s_namespace_pod")])
    with pytest.raises(KeyError, match="K8S_NAMESPACE"):
        unranked.extract_batch(["pod a/b"], lambda shapes: [[] for _ in shapes])
