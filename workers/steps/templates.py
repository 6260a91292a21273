"""Streaming log template mining (Drain-style, no per-system settings).

A line goes through three stages:

1. *Masking*: numbers, hex, IPv4 addresses, ids glued with ``_`` and paths are
   replaced by ``<*>`` with precompiled regexes. The masked token list is what a
   template is built from; a coarser *key* (every digit run masked) groups lines.
2. *Grouping*: lines with the same key share a leaf; leaves of the same length
   join a cluster when they differ only where values look variable (the differing
   parts carry masked digits) or, for plain words, once the position has shown
   many distinct values. The first token is never generalised from words alone,
   as in Drain's prefix tree: it is almost always a constant.
3. *Template*: per cluster and position, a token seen with one value stays
   literal; a varying token keeps its common prefix/suffix up to a separator and
   the rest becomes ``<*>``.

Template ids are a blake2b hash of the template text, so they are identical on
every replica and across restarts; when a cluster's template generalises, the old
id keeps resolving to the cluster (see ``TemplateMiner.current_template``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

WILDCARD = "<*>"

_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_TLD = r"(?:com|net|org|edu|gov|mil|info|biz|local|lan)"
_CCTLD = r"[a-z]{2}"  # country codes only with a digit in the name: not mapred.job.id
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
# Order matters: earlier alternatives win at the same position.
_MASK = re.compile(
    "|".join(
        (
            # a syslog-style date: [Fri] Jul  1 07:57:30 [PDT] [2005]
            rf"\b(?:{_DAY}\s+)?{_MONTH}\s+\d{{1,2}}\s+\d\d:\d\d:\d\d(?:\s+[A-Z]{{3,4}})?(?:\s+\d{{4}})?\b",
            r"(?<=://)[^\s\]\)'\",]+",  # everything after a URL scheme
            r"(?<![\w.\-/])(?:/[\w.\-]+){2,}/?(?=$|[\s:,;)\]'\"])",  # a whole path
            r"(?<![\w:])(?:[0-9A-Fa-f]{2}[:\-]){3,}[0-9A-Fa-f]{2}(?![\w:])",  # MAC-like
            rf"(?<![\w\-.])[\w\-]+(?:\.[\w\-]+)*\.{_TLD}(?![\w\-.])",  # host.example.com
            rf"(?<![\w\-.])(?=[\w\-.]*\d)[\w\-]+(?:\.[\w\-]+)+\.{_CCTLD}(?![\w\-.])",  # h1.x.nl
            r"(?<![\w\-.])[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*-\d+(?![\w\-])",  # host-name-07
            r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.]\d)",  # IPv4
            r"(?<![\w.])\d+(?:\.\d+)?\s?(?:[KMGT]i?B|[KMGTk]|B)\b",  # sizes: 5.2 KB, 16K
            r"\b0[xX][0-9a-fA-F]+\b",  # 0x hex
            r"(?<=[A-Za-z]_)-?\d[\w\-]*",  # ids such as blk_-42 or task_12_m_3
            r"(?<![\w\-])(?=[a-fA-F]*\d|[a-fA-F]{8})[0-9a-fA-F]{8,}(?!\w)",  # bare hex words
            r"(?<=[A-Za-z])\d+(?=\.\d)",  # version glued to a letter: v1.2
            r"(?:(?<![A-Za-z0-9])-)?(?<![A-Za-z\d])\d+",  # numbers (not ssh2, r24)
        )
    )
)
# Digit runs glued to letters (bglio12, U01) only group lines together; whether
# they are literal is decided by the observed values.
_MAY_MASK = re.compile(r"[\d/]|[a-fA-F]{8}")
_KEY_DIGITS = re.compile(r"\d+")
_ALNUM = re.compile(r"[A-Za-z0-9]")
_WORDS = re.compile(r"[A-Za-z0-9]+")
# A masked token repeated (blk_<*> blk_<*> ...) is one variable-length list.
_REPEATS = re.compile(r"(?<!\S)(\S*\w\S*<\*>\S*|\S*<\*>\S*\w\S*)(?:\s+\1)+(?!\S)")


def mask(content: str) -> str:
    """The line with the obviously variable parts replaced by ``<*>``."""
    if not _MAY_MASK.search(content):
        return content  # no digit, path or long hex word: nothing to mask
    return _REPEATS.sub(r"\1", _MASK.sub(WILDCARD, content))


def template_id(template: str) -> str:
    """Stable id of a template text: same on every replica and after restarts."""
    return hashlib.blake2b(template.encode(), digest_size=8).hexdigest()


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
    while suffix and (_ALNUM.match(suffix[0]) or suffix[0] in "<*>"):
        suffix = suffix[1:]  # a suffix starts on a separator: `:<*>`, `)`
    if prefix.endswith("<") or prefix.endswith("<*"):
        prefix = prefix[: prefix.rfind("<")]
    return f"{prefix}{WILDCARD}{suffix}"


def _starts_variable(rest: str) -> bool:
    return rest[:1].isdigit() or rest.startswith(WILDCARD)


def extract_variables(template: str, content: str) -> list[str]:
    """Values behind each ``<*>`` of `template` in a line it matched.

    Literal pieces are found left to right in the whitespace-normalised line; a
    value is what lies between two of them (a mask may span several words).
    """
    line = " ".join(content.split())
    literals = template.split(WILDCARD)
    values: list[str] = []
    pos = len(literals[0]) if line.startswith(literals[0]) else 0
    for index, literal in enumerate(literals[1:], start=1):
        if index == len(literals) - 1:
            end = len(line) - len(literal) if literal and line.endswith(literal) else len(line)
        else:
            found = line.find(literal, pos + 1) if literal else -1
            end = found if found >= 0 else pos
        end = max(end, pos)
        values.append(line[pos:end])
        pos = end + len(literal)
    return values


@dataclass(frozen=True, slots=True)
class TemplateMatch:
    """What the miner made of one line."""

    template: str  # current template of the line's group, `<*>` for variables
    template_id: str  # blake2b of `template`; stable across replicas and restarts
    variables: tuple[str, ...]  # the values behind each `<*>`, in order
    cluster: int  # local group number, only meaningful inside this miner


_SAMPLE_CAP = 8  # distinct values kept per varying position (bounds state size)


class _Cluster:
    """One group of lines: first-seen tokens plus how each position varied."""

    __slots__ = (
        "cid", "hashed", "key", "prefix", "samples", "size", "suffix", "template", "tid", "tokens"
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

    def observe(self, tokens: list[str]) -> None:
        self.size += 1
        first = self.tokens
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

    def absorb(self, other: _Cluster) -> None:
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
    def from_dict(cls, data: dict[str, Any]) -> _Cluster:
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


def _looks_variable(a: str, b: str, leading: bool = False) -> bool:
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


class TemplateMiner:
    """Streaming template miner; feed lines with `add`, persist with `to_dict`.

    `word_values` is how many distinct plain words a position must show before
    it is treated as a variable (usernames: yes; a handful of states: no).
    """

    def __init__(self, word_values: int = 4) -> None:
        self.word_values = word_values
        self._clusters: dict[int, _Cluster] = {}
        self._parent: dict[int, int] = {}  # absorbed cluster -> absorbing cluster
        self._leaves: dict[str, int] = {}  # grouping key -> cluster
        self._by_length: dict[int, list[int]] = {}  # token count -> live clusters
        self._families: dict[str, dict[str, int]] = {}  # near-identical clusters by word
        self._aliases: dict[str, int] = {}  # every template id ever issued -> cluster

    def add(self, content: str) -> TemplateMatch:
        masked = mask(content)
        tokens = masked.split()
        leaf = _KEY_DIGITS.sub(WILDCARD, " ".join(tokens))
        cid = self._leaves.get(leaf)
        if cid is None:
            cid = self._place(leaf.split(" "), tokens)
            self._leaves[leaf] = cid
        cluster = self._clusters[self._find(cid)]
        cluster.observe(tokens)
        if cluster.hashed != cluster.template:  # hash only when the template changed
            cluster.tid, cluster.hashed = template_id(cluster.template), cluster.template
            self._aliases.setdefault(cluster.tid, cluster.cid)
        tid = cluster.tid
        return TemplateMatch(cluster.template, tid, self._variables(cluster, content), cluster.cid)

    def current_template(self, template_id_or_cluster: str | int) -> str | None:
        """Current template of a group, given any id it ever had (or its cluster)."""
        if isinstance(template_id_or_cluster, str):
            cid = self._aliases.get(template_id_or_cluster)
            if cid is None:
                return None
        else:
            cid = template_id_or_cluster
        return self._clusters[self._find(cid)].template

    def templates(self) -> dict[str, str]:
        """Current template id -> template for every live group."""
        return {template_id(c.template): c.template for c in self._live()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state; `from_dict` restores a miner that continues identically."""
        return {
            "word_values": self.word_values,
            "clusters": [c.to_dict() for c in self._clusters.values()],
            "parent": [[k, v] for k, v in self._parent.items()],
            "leaves": self._leaves,
            "by_length": [[n, ids] for n, ids in self._by_length.items()],
            "families": self._families,
            "aliases": self._aliases,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TemplateMiner:
        miner = cls(word_values=int(data["word_values"]))
        for item in data["clusters"]:
            cluster = _Cluster.from_dict(item)
            miner._clusters[cluster.cid] = cluster
        miner._parent = {int(k): int(v) for k, v in data["parent"]}
        miner._leaves = {str(k): int(v) for k, v in data["leaves"].items()}
        miner._by_length = {int(n): [int(i) for i in ids] for n, ids in data["by_length"]}
        miner._families = {k: dict(v) for k, v in data["families"].items()}
        miner._aliases = {str(k): int(v) for k, v in data["aliases"].items()}
        for cluster in miner._clusters.values():
            cluster.tid, cluster.hashed = template_id(cluster.template), cluster.template
        return miner

    def _live(self) -> list[_Cluster]:
        return [self._clusters[c] for ids in self._by_length.values() for c in ids]

    def _find(self, cid: int) -> int:
        root = cid
        while root in self._parent:
            root = self._parent[root]
        while cid != root:  # path compression keeps lookups O(1) amortised
            parent = self._parent[cid]
            self._parent[cid] = root
            cid = parent
        return root

    def _variables(self, cluster: _Cluster, content: str) -> tuple[str, ...]:
        if WILDCARD not in cluster.template:
            return ()
        return tuple(extract_variables(cluster.template, content))

    def _place(self, key: list[str], tokens: list[str]) -> int:
        """Cluster for a new grouping key: an existing one, a merge, or a new one."""
        best, diffs = self._closest(key)
        if best is not None and not diffs:
            return best.cid
        if best is not None:
            # as in Drain, a leading word that differs makes a different event
            words = [i for i in diffs if not _looks_variable(best.key[i], key[i], i == 0)]
            if not words:
                self._generalise(best, diffs)
                return best.cid
            constants = sum(t != WILDCARD for t in best.key) - len(diffs)
            if len(words) == 1 and words[0] > 0 and constants >= 2:
                return self._join_family(best, key, tokens, words[0], diffs)
        return self._new_cluster(key, tokens, best)

    def _closest(self, key: list[str]) -> tuple[_Cluster | None, list[int]]:
        """Same-length cluster with the fewest differing positions (at most half)."""
        best: _Cluster | None = None
        best_diffs: list[int] = []
        limit = len(key) // 2
        for cid in self._by_length.get(len(key), ()):
            cluster = self._clusters[cid]
            diffs = [
                i for i, (a, b) in enumerate(zip(cluster.key, key, strict=True))
                if a != b and a != WILDCARD
            ]
            if len(diffs) <= limit and (best is None or len(diffs) < len(best_diffs)):
                best, best_diffs = cluster, diffs
                if not diffs:
                    break
        return best, best_diffs

    def _generalise(self, cluster: _Cluster, positions: list[int]) -> None:
        for i in positions:
            cluster.key[i] = WILDCARD

    def _new_cluster(self, key: list[str], tokens: list[str], like: _Cluster | None) -> int:
        cid = len(self._clusters)
        cluster_key = list(key)
        if like is not None:  # inherit generalised positions so families line up
            for i, token in enumerate(like.key):
                if token == WILDCARD:
                    cluster_key[i] = WILDCARD
        self._clusters[cid] = _Cluster(cid, tokens, cluster_key)
        self._by_length.setdefault(len(key), []).append(cid)
        return cid

    def _join_family(
        self, best: _Cluster, key: list[str], tokens: list[str], word: int, diffs: list[int]
    ) -> int:
        """Clusters differing by one word at `word`; merged once it shows enough values."""
        rest = [t if i != word else "" for i, t in enumerate(best.key)]
        family_key = f"{len(key)}|{word}|" + "\x1f".join(rest)
        family = self._families.setdefault(family_key, {best.key[word]: best.cid})
        if len(family) + 1 < self.word_values:
            cid = self._new_cluster(key, tokens, best)
            family[key[word]] = cid
            return cid
        self._generalise(best, diffs)
        for member in family.values():
            self._merge(best, self._find(member))
        del self._families[family_key]
        return best.cid

    def _merge(self, into: _Cluster, cid: int) -> None:
        if cid == into.cid:
            return
        other = self._clusters[cid]
        into.absorb(other)
        self._parent[cid] = into.cid
        self._by_length[len(other.key)].remove(cid)
