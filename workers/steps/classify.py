"""Category and severity of one log line (pure). Rules are data: `categories.yaml`.

Categories: auth, network, storage, database, application_error, security, performance,
system, other. Severity is 1-5 (debug, info, warning, error, critical): the level's
value, raised (never lowered) by what the message says.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import yaml

RULES_PATH = Path(__file__).with_name("categories.yaml")

CATEGORIES = (
    "auth", "network", "storage", "database", "application_error", "security",
    "performance", "system", "other",
)  # fmt: skip
SEVERITY_NAMES = {1: "debug", 2: "info", 3: "warning", 4: "error", 5: "critical"}


class HasLabel(Protocol):
    """Anything with an entity label, e.g. workers.steps.entities.Entity."""

    @property
    def label(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Classification:
    category: str
    severity: int  # 1..5, see SEVERITY_NAMES
    matched_rule: str  # rule id from categories.yaml, or "default" when none matched

    @property
    def severity_name(self) -> str:
        return SEVERITY_NAMES[self.severity]


@dataclass(frozen=True, slots=True)
class _CategoryRule:
    rule_id: str
    category: str
    pattern: re.Pattern[str] | None
    entities: frozenset[str]
    levels: frozenset[str]

    def matches(self, message: str, level: str, labels: set[str]) -> bool:
        return (
            (self.pattern is not None and self.pattern.search(message) is not None)
            or not self.entities.isdisjoint(labels)
            or level in self.levels
        )


@dataclass(frozen=True, slots=True)
class _Rules:
    categories: tuple[_CategoryRule, ...]
    level_severity: dict[str, int]
    default_severity: int
    raises: tuple[tuple[int, re.Pattern[str]], ...]  # highest floor first
    dampen: re.Pattern[str] | None


def _compile(pattern: str | None) -> re.Pattern[str] | None:
    return re.compile(pattern, re.IGNORECASE) if pattern else None


@lru_cache(maxsize=4)
def load_rules(path: Path = RULES_PATH) -> _Rules:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    categories = []
    for entry in data["categories"]:
        if entry["category"] not in CATEGORIES:
            raise ValueError(f"{path}: unknown category {entry['category']!r} in {entry['id']}")
        categories.append(
            _CategoryRule(
                rule_id=entry["id"],
                category=entry["category"],
                pattern=_compile(entry.get("pattern")),
                entities=frozenset(entry.get("entities", ())),
                levels=frozenset(level.lower() for level in entry.get("levels", ())),
            )
        )
    severity = data["severity"]
    raises = sorted(
        ((int(r["floor"]), re.compile(r["pattern"], re.IGNORECASE)) for r in severity["raise"]),
        key=lambda item: -item[0],
    )
    return _Rules(
        categories=tuple(categories),
        level_severity={name.lower(): int(value) for name, value in severity["levels"].items()},
        default_severity=int(severity["default"]),
        raises=tuple(raises),
        dampen=_compile(severity.get("dampen")),
    )


def severity_of(message: str, level: str | None, rules: _Rules | None = None) -> int:
    rules = rules or load_rules()
    base = rules.level_severity.get((level or "").strip().lower(), rules.default_severity)
    floor = next((value for value, pattern in rules.raises if pattern.search(message)), 1)
    if rules.dampen is not None and rules.dampen.search(message):
        floor = min(floor, 2)  # "error(s) detected and corrected" is routine
    return max(base, floor)


def classify(
    message: str,
    level: str | None,
    entities: Sequence[HasLabel] | None = None,
) -> Classification:
    rules = load_rules()
    normalized_level = (level or "").strip().lower()
    labels = {entity.label for entity in entities or ()}
    severity = severity_of(message, level, rules)
    for rule in rules.categories:
        if rule.matches(message, normalized_level, labels):
            return Classification(rule.category, severity, rule.rule_id)
    return Classification("other", severity, "default")
