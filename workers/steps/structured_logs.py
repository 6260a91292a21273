"""Decode structured log records (JSON objects, logfmt) into flat string dicts.

The parse step then picks timestamp/level/message/... out of the flat dict by the key
conventions in formats.yaml (`structured_keys`).  Both decoders return None when the
text is not a record of their kind, so detection can move on.
"""

from __future__ import annotations

import json
import re
from typing import Any

# One logfmt token: key, or key=value with value bare or double-quoted (with escapes).
_LOGFMT_TOKEN = re.compile(r'\s*([^\s="]+)(?:=("(?:[^"\\]|\\.)*"|[^\s"]*))?')
_MIN_LOGFMT_PAIRS = 2  # "word=x" alone is too weak a signal for a logfmt record


def _stringify(value: Any) -> str:
    if isinstance(value, str):
        return value
    # Numbers, booleans, lists keep their JSON spelling (true, 30, [1, 2]).
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _flatten(value: dict[str, Any], prefix: str, out: dict[str, str]) -> None:
    for key, item in value.items():
        dotted = f"{prefix}{key}"
        if isinstance(item, dict) and item:
            _flatten(item, f"{dotted}.", out)
        elif item is not None:
            out[dotted] = _stringify(item)


def decode_json_object(text: str) -> dict[str, str] | None:
    """A JSON object flattened to dotted keys ({"log": {"level": "x"}} -> log.level)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    flat: dict[str, str] = {}
    try:
        _flatten(value, "", flat)
    except RecursionError:
        return None  # absurdly deep nesting: keep the raw text instead
    return flat


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"':
        try:
            decoded = json.loads(value)
        except ValueError:
            return value[1:-1]
        return decoded if isinstance(decoded, str) else value[1:-1]
    return value


def decode_logfmt(text: str) -> dict[str, str] | None:
    """key=value pairs covering the whole text; None unless it is clearly logfmt."""
    if "=" not in text:
        return None
    pairs: dict[str, str] = {}
    assignments = bare_keys = 0
    position, end = 0, len(text)
    while position < end:
        match = _LOGFMT_TOKEN.match(text, position)
        if match is None or match.end() == position:
            if text[position:].isspace():
                break
            return None  # something that is neither key nor key=value: prose, not logfmt
        key, value = match.group(1), match.group(2)
        if value is None:
            pairs[key] = "true"  # logfmt bare key means a true flag
            bare_keys += 1
        else:
            pairs[key] = _unquote(value)
            assignments += 1
        position = match.end()
        if position < end and not text[position].isspace():
            return None  # e.g. 'a=b"c' or 'key:value' glued to the next token
    # Prose with a stray "k=v" has many bare words; real logfmt is mostly assignments.
    return pairs if assignments >= _MIN_LOGFMT_PAIRS and assignments > bare_keys else None
