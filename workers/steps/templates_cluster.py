"""Groups of lines for the template miner (`workers.steps.templates`).

A `Cluster` keeps the masked tokens of its first line and, per position that
varied, the common prefix/suffix and a few sample values; its template keeps
a varying token's prefix/suffix up to a separator (``_`` glues an identifier,
it separates nothing) and makes the rest ``<*>``.
`_looks_variable` tells whether two differing key tokens differ where a value
goes (masks in the same punctuation skeleton) rather than in wording.
"""

from __future__ import annotations

import re
from typing import Any

from workers.steps.templates_masking import WILDCARD

_ALNUM = re.compile(r"[A-Za-z0-9]")
_WORDS = re.compile(r"[A-Za-z0-9]+")


def _common_prefix(a: str, b: str) -> str:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return a[:i]


def _common_suffix(a: str, b: str) -> str:
    return _common_prefix(a[::-1], b[::-1])[::-1]


def _varying_token(prefix: str, suffix: str, values: tuple[str, ...]) -> str:
    """Template token for a position whose values differ.

    The prefix is kept when it ends on a separator (``rhost=``, ``MININT-``) or
    when what follows is a number or mask in every value (``bglio`` in bglio12);
    otherwise it is backed off to its last separator so no word is cut. The
    suffix likewise starts on a separator (``:<*>`` of host:port, ``)``).
    """
    while prefix and _ALNUM.match(prefix[-1]):
        if all(_starts_variable(v[len(prefix) :]) for v in values):
            break
        prefix = prefix[:-1]
    while suffix and (_ALNUM.match(suffix[0]) or suffix[0] in "<*>_"):
        # a suffix starts on a separator (`:<*>`, `)`); `_` glues one identifier, so
        # rdd_<*> / broadcast_<*> is one value, not `<*>_<*>`
        suffix = suffix[1:]
    if prefix.endswith("<") or prefix.endswith("<*"):
        prefix = prefix[: prefix.rfind("<")]
    return f"{prefix}{WILDCARD}{suffix}"


def _starts_variable(rest: str) -> bool:
    return rest[:1].isdigit() or rest.startswith(WILDCARD)


_SAMPLE_CAP = 8  # distinct values kept per varying position (bounds state size)


class Cluster:
    """One group of lines: first-seen tokens plus how each position varied."""

    __slots__ = (
        "cid", "hashed", "key", "literals", "prefix", "samples", "size", "suffix", "template", "tid",
        "tokens",
    )

    def __init__(self, cid: int, tokens: list[str], key: list[str]) -> None:
        self.cid = cid
        self.tokens = tokens  # masked tokens of the first line
        self.key = key  # grouping key; WILDCARD where the cluster generalised
        self.prefix: dict[int, str] = {}  # position -> common prefix of its values
        self.suffix: dict[int, str] = {}
        self.samples: dict[int, list[str]] = {}
        self.size = 0
        self.template = " ".join(tokens)
        self.tid = ""  # template_id(hashed), kept up to date by the miner
        self.hashed = ""
        self.literals: list[str] = []  # hashed.split(WILDCARD), for extracting values

    def observe(self, tokens: list[str]) -> None:
        self.size += 1
        first = self.tokens
        if tokens == first:
            return
        changed = False
        for i, value in enumerate(tokens):
            if value != first[i]:
                changed = self._vary(i, value) or changed
        if changed:
            self.template = self._render()

    def _vary(self, i: int, value: str) -> bool:
        prefix = self.prefix.get(i, self.tokens[i])
        suffix = self.suffix.get(i, self.tokens[i])
        samples = self.samples.setdefault(i, [self.tokens[i]])
        fresh = len(samples) < _SAMPLE_CAP and value not in samples
        if fresh:
            samples.append(value)
        if value.startswith(prefix) and value.endswith(suffix) and i in self.prefix:
            return fresh
        self.prefix[i] = _common_prefix(prefix, value)
        self.suffix[i] = _common_suffix(suffix, value)
        return True

    def absorb(self, other: Cluster) -> None:
        """Take in another cluster's lines and value statistics."""
        self.size += other.size
        for i, value in enumerate(other.tokens):
            for sample in other.samples.get(i, [value]):
                if sample != self.tokens[i]:
                    self._vary(i, sample)
            if i in other.prefix and i in self.prefix:
                self.prefix[i] = _common_prefix(self.prefix[i], other.prefix[i])
                self.suffix[i] = _common_suffix(self.suffix[i], other.suffix[i])
        self.template = self._render()

    def _render(self) -> str:
        out = list(self.tokens)
        for i, prefix in self.prefix.items():
            overlap = len(prefix) + len(self.suffix[i]) > min(map(len, self.samples[i]))
            suffix = "" if overlap else self.suffix[i]
            out[i] = _varying_token(prefix, suffix, tuple(self.samples[i]))
        return " ".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cid": self.cid,
            "tokens": self.tokens,
            "key": self.key,
            "size": self.size,
            "varying": [[i, self.prefix[i], self.suffix[i], self.samples[i]] for i in self.prefix],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cluster:
        cluster = cls(int(data["cid"]), list(data["tokens"]), list(data["key"]))
        cluster.size = int(data["size"])
        for i, prefix, suffix, samples in data["varying"]:
            cluster.prefix[int(i)] = prefix
            cluster.suffix[int(i)] = suffix
            cluster.samples[int(i)] = list(samples)
        cluster.template = cluster._render()
        return cluster


def _middles(a: str, b: str) -> tuple[str, str]:
    """The differing middle parts of two tokens, never cutting through a mask."""
    start = len(_common_prefix(a, b))
    while start and WILDCARD in a[max(0, start - 2) : start + 2]:
        start -= 1  # back off so that a shared mask stays inside the middle
    end = len(_common_suffix(a[start:], b[start:]))
    while end and WILDCARD in a[len(a) - end - 2 : len(a) - end + 2]:
        end -= 1
    return a[start : len(a) - end], b[start : len(b) - end]


def looks_variable(a: str, b: str, leading: bool = False) -> bool:
    """Whether two differing tokens differ where a value goes, not in wording.

    True when one of them is a bare mask where the other has text (``<*>`` /
    ``zummit.com``) or, except for a leading token, when both carry masks in
    the same punctuation skeleton and differ by a word on each side (``rdd_<*>``
    / ``broadcast_<*>``, but not ``(uid=<*>)`` / ``LOGIN(uid=<*>)``).
    """
    left, right = _middles(a, b)
    if WILDCARD in (left, right):
        return True
    if leading or not (left and right) or WILDCARD not in a or WILDCARD not in b:
        return False
    return _WORDS.sub("", a) == _WORDS.sub("", b)


