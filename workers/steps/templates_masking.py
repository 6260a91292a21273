"""Masking and tokenising for the template miner (`workers.steps.templates`).

`mask` replaces the obviously variable parts of a line (numbers, hex, IPv4
addresses, ids glued with ``_``, paths, dates, sizes ...) by ``<*>`` with one
precompiled regex. A decimal number is one value (``0.38`` and ``-1.5`` are ``<*>``):
the variable a reader wants is the number, not its two halves, and it is the Loghub-2.0
convention (its "DV" rule). A version or address keeps its dots (``<*>.<*>.<*>``), as
does a decimal glued to a word or a dash (``v2.4``, ``2.6.5-1.358``);
a date shows the fields of its clock (``<*>:<*>:<*>``), as a clock alone does;
a path is one value unless its file is numbered after its kind
(``/<*>/blk_<*>``, ``/<*>/part-<*>``). `mask_tokens` gives exactly ``mask(line).split()``, faster:

- apart from dates and sizes (``Jul 17 09:07:44``, ``5 KB``) no mask crosses
  whitespace, and every lookaround at a token edge sees whitespace the same way
  as a string edge, so each token is masked on its own and memoised (tokens
  repeat heavily). Where flags of neighbouring tokens (ends with a month name, a
  digit ...) say a date or size may span whitespace, those tokens are masked
  together from the original text;
- the regex cannot tell the digits apart except the ``0`` of ``0x``, so a token
  new to the memo is masked through its *shape* (digits turned into ``1``):
  ``blk_-42`` and ``blk_-97`` cost one regex run.
"""

from __future__ import annotations

import hashlib
import re

WILDCARD = "<*>"

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH = f"(?:{'|'.join(_MONTHS)})"
_TLD = r"(?:com|net|org|edu|gov|mil|info|biz|local|lan)"
_CCTLD = r"[a-z]{2}"  # country codes only with a digit in the name: not mapred.job.id
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY = f"(?:{'|'.join(_DAYS)})"
# Order matters: earlier alternatives win at the same position. Only the first
# (date) and the sizes may span whitespace; `mask_tokens` relies on that.
_MASK = re.compile(
    "|".join(
        (
            # a syslog-style date: [Fri] Jul  1 07:57:30 [PDT] [2005]
            rf"(?P<date>\b(?:{_DAY}\s+)?{_MONTH}\s+\d{{1,2}}\s+\d\d:\d\d:\d\d(?:\s+[A-Z]{{3,4}})?(?:\s+\d{{4}})?\b)",
            r"(?<=://)[^\s\]\)'\",]+",  # everything after a URL scheme
            # a path whose file is numbered after its kind (/data/blk_42, /out/part-00007)
            r"(?<![\w.\-/])(?:/[\w.\-]+)+/(?P<kind>[A-Za-z]+(?:[_\-][A-Za-z]+)*[_\-])-?\d+"
            r"(?P<ext>(?:\.[A-Za-z]+)?\.?)(?=$|[\s:,;)\]'\"])",
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
            r"(?<![\w.\-])-?\d+\.\d+(?!\d|\.\d)",  # a decimal number is one value: 0.38, -1.5
            r"(?:(?<![A-Za-z0-9])-)?(?<![A-Za-z\d])\d+",  # numbers (not ssh2, r24)
        )
    )
)
_CLOCK = f"{WILDCARD}:{WILDCARD}:{WILDCARD}"


def _replacement(match: re.Match[str]) -> str:
    """What a mask match becomes; never holds a digit, so it fits every text of a shape."""
    if match.group("date") is not None:
        # a clock shows its fields like any h:m:s; the calendar words around it join them
        return _CLOCK
    kind = match.group("kind")
    if kind is not None:
        # the directory is where the file is (a value); its kind-named file is templated
        return f"/{WILDCARD}/{kind}{WILDCARD}{match.group('ext')}"
    return WILDCARD


# Digit runs glued to letters (bglio12, U01) only group lines together; whether
# they are literal is decided by the observed values.
_MAY_MASK = re.compile(r"[\d/]|[a-fA-F]{8}")
_KEY_DIGITS = re.compile(r"\d+")
_WORD_CHAR = re.compile(r"\w")
# A masked token repeated (blk_<*> blk_<*> ...) is one variable-length list.
_REPEATS = re.compile(r"(?<!\S)(\S*\w\S*<\*>\S*|\S*<\*>\S*\w\S*)(?:\s+\1)+(?!\S)")


def mask(content: str) -> str:
    """The line with the obviously variable parts replaced by ``<*>``."""
    if not _MAY_MASK.search(content):
        return content  # no digit, path or long hex word: nothing to mask
    return _REPEATS.sub(r"\1", _MASK.sub(_replacement, content))


def template_id(template: str) -> str:
    """Stable id of a template text: same on every replica and after restarts."""
    return hashlib.blake2b(template.encode(), digest_size=8).hexdigest()


# Every mask treats the ASCII digits alike but for the `0` of `0x`, so a text
# masks like its *shape*, digits turned into 1 (2-9 only when `0x` or `0X`
# occurs, such shapes keep that `0`): one regex run per shape.
_SHAPE = str.maketrans("0123456789", "1111111111")
_SHAPE_0X = str.maketrans("23456789", "11111111")
_UNIT = re.compile(r"(?:[KMGT]i?B|[KMGTk]|B)\b")  # a token a size's unit starts
_ENDS_MONTH, _ENDS_DAY, _ENDS_DIGIT = 1, 2, 4
_MEMO_CAP = 1 << 16  # entries per memo; a memo is emptied when full (ids churn it)


class _Shaped:
    """Masking of one shape: where the masks fall, the masked text and its key."""

    __slots__ = ("exact", "key", "masked", "spans", "tail", "unit")

    def __init__(self, shape: str) -> None:
        self.spans = [(*m.span(), _replacement(m)) for m in _MASK.finditer(shape)]
        self.masked = _MASK.sub(_replacement, shape)
        self.key = _KEY_DIGITS.sub(WILDCARD, self.masked)
        # no kept digit that the shape may have changed: `masked` fits every text
        self.exact = "1" not in self.masked
        # edges where a date or a `5 KB` size may span whitespace (tokens only)
        self.tail = (
            (_ENDS_MONTH if shape[-3:] in _MONTHS else 0)
            | (_ENDS_DAY if shape[-3:] in _DAYS else 0)
            | (_ENDS_DIGIT if shape[-1:].isdecimal() else 0)
        )
        self.unit = _UNIT.match(shape) is not None


_shapes: dict[str, _Shaped] = {}


def _shaped(text: str) -> _Shaped:
    shape = text.translate(_SHAPE_0X if "0x" in text or "0X" in text else _SHAPE)
    shaped = _shapes.get(shape)
    if shaped is None:
        if len(_shapes) >= _MEMO_CAP:
            _shapes.clear()
        shaped = _shapes[shape] = _Shaped(shape)
    return shaped


def _masked(text: str, shaped: _Shaped) -> str:
    """``_MASK.sub(WILDCARD, text)`` from the masks found in its shape."""
    if shaped.exact:
        return shaped.masked
    pieces: list[str] = []
    last = 0
    for start, end, replacement in shaped.spans:
        pieces.append(text[last:start])
        pieces.append(replacement)
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


# token -> (masked token, its key, _ENDS_* flags, whether a size unit starts it)
_Token = tuple[str, str, int, bool]
_memo: dict[str, _Token] = {}
_repeatable: dict[str, bool] = {}  # masked token -> may collapse as a repeat


def _token(token: str) -> _Token:
    info = _memo.get(token)
    if info is None:
        if len(_memo) >= _MEMO_CAP:
            _memo.clear()
        shaped = _shaped(token)
        info = _memo[token] = (_masked(token, shaped), shaped.key, shaped.tail, shaped.unit)
    return info


def mask_tokens(content: str) -> tuple[list[str], str]:
    """``mask(content).split()`` and the line's grouping key: every digit run masked."""
    words = content.split()
    if not _MAY_MASK.search(content):
        return words, " ".join(words)  # nothing to mask, and no digit for the key
    infos = [_memo.get(w) or _token(w) for w in words]
    tail = 0
    for info in infos:
        if tail and (tail & _ENDS_MONTH or (tail & _ENDS_DIGIT and info[3])):
            tokens, keys = _mask_segments(content, words, infos)
            break
        tail = info[2]
    else:
        tokens = [info[0] for info in infos]
        keys = [info[1] for info in infos]
    for i in range(len(tokens) - 1, 0, -1):
        if tokens[i] == tokens[i - 1] and _is_repeatable(tokens[i]):
            del tokens[i], keys[i]
    return tokens, " ".join(keys)


def _mask_segments(content: str, words: list[str], infos: list[_Token]) -> tuple[list[str], list[str]]:
    """Masked tokens and keys of a line where a date or size may span whitespace.

    Whitespace that one of them may cross joins its neighbours into a segment,
    masked as the original text; a mask never crosses any other whitespace.
    """
    n = len(words)
    joined = [False] * n  # joined[i]: words i and i + 1 are one segment
    for i in range(n - 1):
        tail, (_, _, after, unit) = infos[i][2], infos[i + 1]
        if tail & _ENDS_MONTH:  # Jul|17|09:07:44|PDT|2005
            joined[i : i + 4] = [True] * len(joined[i : i + 4])
        if (tail & _ENDS_DAY and after & _ENDS_MONTH) or (tail & _ENDS_DIGIT and unit):
            joined[i] = True
    tokens: list[str] = []
    keys: list[str] = []
    pos = 0
    i = 0
    while i < n:
        if not joined[i] or i == n - 1:
            tokens.append(infos[i][0])
            keys.append(infos[i][1])
            pos = content.index(words[i], pos) + len(words[i])
            i += 1
            continue
        start = content.index(words[i], pos)
        k = i
        while k < n - 1 and joined[k]:
            pos = content.index(words[k], pos) + len(words[k])
            k += 1
        pos = content.index(words[k], pos) + len(words[k])
        segment = content[start:pos]
        shaped = _shaped(segment)
        tokens.extend(_masked(segment, shaped).split())
        keys.extend(shaped.key.split())
        i = k + 1
    return tokens, keys


def _is_repeatable(token: str) -> bool:
    flag = _repeatable.get(token)
    if flag is None:
        if len(_repeatable) >= _MEMO_CAP:
            _repeatable.clear()
        flag = _repeatable[token] = WILDCARD in token and bool(_WORD_CHAR.search(token))
    return flag


def extract_variables(template: str, content: str) -> list[str]:
    """Values behind each ``<*>`` of `template` in a line it matched.

    Literal pieces are found left to right in the whitespace-normalised line; a
    value is what lies between two of them (a mask may span several words).
    """
    return extract_values(template.split(WILDCARD), content)


def extract_values(literals: list[str], content: str) -> list[str]:
    line = " ".join(content.split())
    values: list[str] = []
    pos = len(literals[0]) if line.startswith(literals[0]) else 0
    last = len(literals) - 1
    for index in range(1, last + 1):
        literal = literals[index]
        if index == last:
            end = len(line) - len(literal) if literal and line.endswith(literal) else len(line)
        else:
            found = line.find(literal, pos + 1) if literal else -1
            end = found if found >= 0 else pos
        if end < pos:
            end = pos
        values.append(line[pos:end])
        pos = end + len(literal)
    return values
