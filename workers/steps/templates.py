"""Streaming log template mining (Drain-style, no per-system settings).

A line goes through three stages:

1. *Masking*: numbers (a decimal keeps its point), hex, IPv4 addresses, ids glued with
   ``_`` and paths are replaced by ``<*>`` with precompiled regexes; a date keeps
   its clock's ``:`` (``<*>:<*>:<*>``), a file numbered after its kind keeps the
   kind (``/<*>/blk_<*>``). The masked token list is what a
   template is built from; a coarser *key* (every digit run masked) groups lines.
2. *Grouping*: lines with the same key share a leaf; leaves of the same length
   join a cluster when they differ only where values look variable (the differing
   parts carry masked digits) or, for plain words, once the position has shown
   many distinct values (two suffice when those very words already varied after
   the same preceding token in another group). The first token is never
   generalised from words alone, as in Drain's prefix tree: it is almost always
   a constant.
3. *Template*: per cluster and position, a token seen with one value stays
   literal; a varying token keeps its common prefix/suffix up to a separator and
   the rest becomes ``<*>``.

Masking lives in `templates_masking`, clusters and their templates in
`templates_cluster`; this module keeps the public API.

Template ids are a blake2b hash of the template text, so they are identical on
every replica and across restarts; when a cluster's template generalises, the old
id keeps resolving to the cluster (see ``TemplateMiner.current_template``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workers.steps.templates_cluster import Cluster, looks_variable
from workers.steps.templates_masking import (
    WILDCARD,
    extract_values,
    extract_variables,
    mask,
    mask_tokens,
    template_id,
)

__all__ = ["WILDCARD", "TemplateMatch", "TemplateMiner", "extract_variables", "mask", "template_id"]


@dataclass(frozen=True, slots=True)
class TemplateMatch:
    """What the miner made of one line."""

    template: str  # current template of the line's group, `<*>` for variables
    template_id: str  # blake2b of `template`; stable across replicas and restarts
    variables: tuple[str, ...]  # the values behind each `<*>`, in order
    cluster: int  # local group number, only meaningful inside this miner



class TemplateMiner:
    """Streaming template miner; feed lines with `add`, persist with `to_dict`.

    `word_values` is how many distinct plain words a position must show before
    it is treated as a variable (usernames: yes; a handful of states: no),
    unless the words already varied after the same token elsewhere.
    """

    def __init__(self, word_values: int = 4) -> None:
        self.word_values = word_values
        self._clusters: dict[int, Cluster] = {}
        self._parent: dict[int, int] = {}  # absorbed cluster -> absorbing cluster
        self._leaves: dict[str, int] = {}  # grouping key -> cluster
        self._by_length: dict[int, list[int]] = {}  # token count -> live clusters
        self._families: dict[str, dict[str, int]] = {}  # near-identical clusters by word
        self._aliases: dict[str, int] = {}  # every template id ever issued -> cluster
        self._vocab: dict[str, set[str]] = {}  # preceding token -> words seen varying after it

    def add(self, content: str) -> TemplateMatch:
        tokens, leaf = mask_tokens(content)
        cid = self._leaves.get(leaf)  # a line shape seen before maps straight to its group
        if cid is None:
            cid = self._place(leaf.split(" "), tokens)
            self._leaves[leaf] = cid
        if cid in self._parent:
            cid = self._find(cid)
        cluster = self._clusters[cid]
        cluster.observe(tokens)
        template = cluster.template
        if cluster.hashed != template:  # hash only when the template changed
            cluster.tid, cluster.hashed = template_id(template), template
            cluster.literals = template.split(WILDCARD)
            self._aliases.setdefault(cluster.tid, cluster.cid)
        literals = cluster.literals
        variables = tuple(extract_values(literals, content)) if len(literals) > 1 else ()
        return TemplateMatch(template, cluster.tid, variables, cluster.cid)

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
            "vocab": {context: sorted(words) for context, words in self._vocab.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TemplateMiner:
        miner = cls(word_values=int(data["word_values"]))
        for item in data["clusters"]:
            cluster = Cluster.from_dict(item)
            miner._clusters[cluster.cid] = cluster
        miner._parent = {int(k): int(v) for k, v in data["parent"]}
        miner._leaves = {str(k): int(v) for k, v in data["leaves"].items()}
        miner._by_length = {int(n): [int(i) for i in ids] for n, ids in data["by_length"]}
        miner._families = {k: dict(v) for k, v in data["families"].items()}
        miner._aliases = {str(k): int(v) for k, v in data["aliases"].items()}
        miner._vocab = {str(k): set(v) for k, v in data.get("vocab", {}).items()}
        for cluster in miner._clusters.values():
            cluster.tid, cluster.hashed = template_id(cluster.template), cluster.template
            cluster.literals = cluster.template.split(WILDCARD)
        return miner

    def _live(self) -> list[Cluster]:
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

    def _place(self, key: list[str], tokens: list[str]) -> int:
        """Cluster for a new grouping key: an existing one, a merge, or a new one."""
        best, diffs = self._closest(key)
        if best is not None and not diffs:
            return best.cid
        if best is not None:
            # as in Drain, a leading word that differs makes a different event
            words = [i for i in diffs if not looks_variable(best.key[i], key[i], i == 0)]
            if not words:
                self._generalise(best, diffs)
                return best.cid
            constants = sum(t != WILDCARD for t in best.key) - len(diffs)
            if len(words) == 1 and words[0] > 0 and constants >= 2:
                return self._join_family(best, key, tokens, words[0], diffs)
        return self._new_cluster(key, tokens, best)

    def _closest(self, key: list[str]) -> tuple[Cluster | None, list[int]]:
        """Same-length cluster with the fewest differing positions (at most half)."""
        best: Cluster | None = None
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

    def _generalise(self, cluster: Cluster, positions: list[int]) -> None:
        for i in positions:
            cluster.key[i] = WILDCARD

    def _new_cluster(self, key: list[str], tokens: list[str], like: Cluster | None) -> int:
        cid = len(self._clusters)
        cluster_key = list(key)
        if like is not None:  # inherit generalised positions so families line up
            for i, token in enumerate(like.key):
                if token == WILDCARD:
                    cluster_key[i] = WILDCARD
        self._clusters[cid] = Cluster(cid, tokens, cluster_key)
        self._by_length.setdefault(len(key), []).append(cid)
        return cid

    def _join_family(
        self, best: Cluster, key: list[str], tokens: list[str], word: int, diffs: list[int]
    ) -> int:
        """Clusters differing by one word at `word`; merged once it shows enough values.

        Enough is `word_values` distinct words, or two when every one of them has
        already varied after the same preceding token in a group merged before
        (``session closed for user <*>`` vouches for ``opened for user cyrus``).
        """
        rest = [t if i != word else "" for i, t in enumerate(best.key)]
        family_key = f"{len(key)}|{word}|" + "\x1f".join(rest)
        family = self._families.setdefault(family_key, {best.key[word]: best.cid})
        known = self._vocab.get(best.key[word - 1], set())
        vouched = key[word] in known and known.issuperset(family)
        if len(family) + 1 < self.word_values and not vouched:
            cid = self._new_cluster(key, tokens, best)
            family[key[word]] = cid
            return cid
        self._generalise(best, diffs)
        for member in family.values():
            self._merge(best, self._find(member))
        del self._families[family_key]
        self._learn(best.key[word - 1], [*family, key[word]])
        return best.cid

    def _learn(self, context: str, words: list[str]) -> None:
        """Words that varied after `context`; merge the families they now vouch for."""
        if context == WILDCARD:
            return
        known = self._vocab.setdefault(context, set())
        if known.issuperset(words):
            return
        known.update(words)
        for family_key, family in list(self._families.items()):
            _, position, rest = family_key.split("|", 2)
            word = int(position)
            if rest.split("\x1f")[word - 1] != context or not known.issuperset(family):
                continue
            members = [self._find(cid) for cid in family.values()]
            into = self._clusters[members[0]]
            self._generalise(into, [word])
            for member in members:
                self._merge(into, member)
            del self._families[family_key]

    def _merge(self, into: Cluster, cid: int) -> None:
        if cid == into.cid:
            return
        other = self._clusters[cid]
        into.absorb(other)
        self._parent[cid] = into.cid
        self._by_length[len(other.key)].remove(cid)
