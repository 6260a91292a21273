"""Redaction step: remove secrets and personal data from log text.  Pure: no I/O after
the rule file (redaction.yaml) is loaded.

``redact(text)`` returns the redacted text and the KINDS redacted (e.g. ("password",
"email")), never the values, so the kinds can be counted and logged safely.
Rules are data; ``RedactionRules.load(disabled=..., extra=...)`` switches rules off or
adds rules without code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

__all__ = ["RedactionRule", "RedactionRules", "redact", "redact_fields"]

DEFAULT_RULES_PATH = Path(__file__).with_name("redaction.yaml")
ACTIONS = ("replace", "replace_value", "mask_email", "luhn_card")
_FLAGS = {"IGNORECASE": re.IGNORECASE, "DOTALL": re.DOTALL, "MULTILINE": re.MULTILINE}
_CARD_DIGITS = range(13, 20)
_JSON_KEY_END = re.compile(r'"\s*:\s*$')


class RedactionConfigError(ValueError):
    """The rule file or an added rule is malformed (raised at load time only)."""


@dataclass(frozen=True, slots=True)
class RedactionRule:
    name: str
    kind: str
    trigger_literals: tuple[str, ...]  # lower-case; any one present -> run the rule
    trigger_regex: re.Pattern[str] | None
    pattern: re.Pattern[str]
    action: str

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any]) -> RedactionRule:
        try:
            name, kind, action = str(spec["name"]), str(spec["kind"]), str(spec["action"])
            flags = 0
            for flag in spec.get("flags", ()):
                flags |= _FLAGS[flag]
            # VERBOSE: long patterns may be folded over YAML lines; spaces are "[ ]".
            pattern = re.compile(str(spec["pattern"]), flags | re.VERBOSE)
            literals = tuple(str(literal).lower() for literal in spec.get("trigger", ()))
            raw_regex = spec.get("trigger_regex")
            trigger_regex = re.compile(str(raw_regex)) if raw_regex else None
        except (KeyError, re.error) as exc:
            raise RedactionConfigError(f"bad redaction rule {dict(spec)!r}: {exc}") from exc
        if not literals and trigger_regex is None:
            raise RedactionConfigError(f"{name}: needs a trigger or a trigger_regex")
        if action not in ACTIONS:
            raise RedactionConfigError(f"{name}: action {action!r} not in {ACTIONS}")
        if action == "replace_value" and "value" not in pattern.groupindex:
            raise RedactionConfigError(f"{name}: replace_value needs a (?P<value>...) group")
        if action == "mask_email" and not {"first", "domain"} <= set(pattern.groupindex):
            raise RedactionConfigError(f"{name}: mask_email needs groups 'first' and 'domain'")
        return cls(name, kind, literals, trigger_regex, pattern, action)


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number carries."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _marker(kind: str) -> str:
    return f"[REDACTED:{kind}]"


def _replacer(rule: RedactionRule, found: list[str]) -> Callable[[re.Match[str]], str]:
    """A re.sub callback applying ``rule`` and noting its kind when it changes text."""
    marker = _marker(rule.kind)

    def replace(match: re.Match[str]) -> str:
        found.append(rule.kind)
        return marker

    def replace_value(match: re.Match[str]) -> str:
        value = match.group("value")
        whole, offset = match.group(0), match.start()
        start, end = match.span("value")
        before = whole[:start - offset]
        quote = value[0] if value[:1] in ("'", '"') and len(value) > 1 else ""
        if not quote and _JSON_KEY_END.search(before):
            quote = '"'  # a JSON number/literal value: keep the document valid JSON
        found.append(rule.kind)
        return f"{before}{quote}{marker}{quote}{whole[end - offset:]}"

    def mask_email(match: re.Match[str]) -> str:
        found.append(rule.kind)
        return f"{match.group('first')}***@{match.group('domain')}"

    def luhn_card(match: re.Match[str]) -> str:
        number = match.group(0)
        digits = number.replace(" ", "").replace("-", "")
        if len(digits) not in _CARD_DIGITS or not luhn_valid(digits):
            return number  # an ordinary long number, not a card
        found.append(rule.kind)
        return marker

    return {"replace": replace, "replace_value": replace_value, "mask_email": mask_email,
            "luhn_card": luhn_card}[rule.action]


@dataclass(frozen=True, slots=True)
class FieldNameRule:
    pattern: re.Pattern[str]
    kind: str


class RedactionRules:
    """An ordered, compiled rule set; immutable after construction."""

    def __init__(self, rules: Iterable[RedactionRule],
                 field_names: Iterable[FieldNameRule] = ()) -> None:
        self.rules: tuple[RedactionRule, ...] = tuple(rules)
        self.field_names: tuple[FieldNameRule, ...] = tuple(field_names)
        # Each distinct trigger literal once, with the rules it announces, so a line costs
        # one `in` per literal however many rules share it ("key").
        literal_rules: dict[str, list[int]] = {}
        for index, rule in enumerate(self.rules):
            for literal in rule.trigger_literals:
                literal_rules.setdefault(literal, []).append(index)
        self._literal_rules = tuple((lit, tuple(ids)) for lit, ids in literal_rules.items())
        # One search says whether any literal is present at all (most lines hold none), so
        # the per-literal loop runs only for the few that do; same hits either way.
        self._any_literal = (
            re.compile("|".join(re.escape(lit) for lit in literal_rules)) if literal_rules else None
        )
        self._field_kinds: dict[str, str | None] = {}  # field name -> secret_field_kind
        self._regex_rules = tuple(
            (rule.trigger_regex, index)
            for index, rule in enumerate(self.rules)
            if rule.trigger_regex is not None
        )

    def _triggered(self, text: str) -> list[RedactionRule]:
        # Most texts trigger nothing: no set is built for them.
        hit: set[int] | None = None
        if self._any_literal is not None:
            lowered = text.lower()
            if self._any_literal.search(lowered) is not None:
                hit = set()
                for literal, indexes in self._literal_rules:
                    if literal in lowered:
                        hit.update(indexes)
        for trigger_regex, index in self._regex_rules:
            if (hit is None or index not in hit) and trigger_regex.search(text) is not None:
                if hit is None:
                    hit = set()
                hit.add(index)
        if not hit:
            return []
        return [self.rules[index] for index in sorted(hit)]

    @classmethod
    def load(
        cls,
        path: Path = DEFAULT_RULES_PATH,
        disabled: Iterable[str] = (),
        extra: Iterable[Mapping[str, Any]] = (),
    ) -> RedactionRules:
        """Rules from ``path`` minus the ``disabled`` names, plus ``extra`` rule specs
        (same keys as in the file) appended after them."""
        with path.open(encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
        if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
            raise RedactionConfigError(f"{path}: expected a mapping with a 'rules' list")
        skip = set(disabled)
        specs = [spec for spec in document["rules"] if spec.get("name") not in skip]
        rules = [RedactionRule.from_mapping(spec) for spec in [*specs, *extra]]
        unknown = skip - {str(spec.get("name")) for spec in document["rules"]}
        if unknown:
            raise RedactionConfigError(f"cannot disable unknown rules {sorted(unknown)}")
        field_names = [
            FieldNameRule(re.compile(str(spec["pattern"])), str(spec["kind"]))
            for spec in document.get("field_names") or ()
        ]
        return cls(rules, field_names)

    def redact(self, text: str) -> tuple[str, tuple[str, ...]]:
        if not text:
            return text, ()
        # Triggers are checked once on the original text: a rule's replacement never
        # introduces a candidate for a later rule ("[REDACTED:...]" matches none).
        triggered = self._triggered(text)
        if not triggered:
            return text, ()  # fast path: no candidate anywhere in the text
        found: list[str] = []
        for rule in triggered:
            text = rule.pattern.sub(_replacer(rule, found), text)
        return text, tuple(dict.fromkeys(found))  # distinct kinds, first-seen order

    def secret_field_kind(self, name: str) -> str | None:
        try:
            return self._field_kinds[name]
        except KeyError:
            pass
        kind = self._field_kind(name)
        if len(self._field_kinds) >= 4096:  # field names are few; stay bounded regardless
            self._field_kinds.clear()
        self._field_kinds[name] = kind
        return kind

    def _field_kind(self, name: str) -> str | None:
        for field_rule in self.field_names:
            if field_rule.pattern.search(name):
                return field_rule.kind
        return None

    def redact_fields(self, fields: Mapping[str, str]) -> tuple[dict[str, str], tuple[str, ...]]:
        redacted: dict[str, str] = {}
        found: list[str] = []
        for name, value in fields.items():
            kind = self.secret_field_kind(name)
            if kind is not None and value:
                redacted[name] = _marker(kind)
                found.append(kind)
                continue
            redacted[name], kinds = self.redact(value)
            if kinds:
                found.extend(kinds)
        return redacted, (tuple(dict.fromkeys(found)) if found else ())


@lru_cache(maxsize=1)
def default_rules() -> RedactionRules:
    return RedactionRules.load()


def redact(text: str, rules: RedactionRules | None = None) -> tuple[str, tuple[str, ...]]:
    """Redacted text and the distinct kinds redacted, in first-seen order."""
    return (rules or default_rules()).redact(text)


def redact_fields(
    fields: Mapping[str, str], rules: RedactionRules | None = None
) -> tuple[dict[str, str], tuple[str, ...]]:
    """Redact parsed fields: a secret-named field (password, api_key, ...) whole, the
    others by the text rules.  Returns a new dict and the kinds redacted."""
    return (rules or default_rules()).redact_fields(fields)
