"""Parity of polaris_native.Redactor (native/redact) with workers/steps/redact.py.

Inputs: every raw line and parsed message (and parsed fields) of the Loghub 2k samples,
every input of tests/unit/test_redact.py, a generated set of lines full of secrets, and a
zoo of patterns exercising the Python -> Rust pattern translation. Texts and kinds must be
identical; rules the native side cannot honour must be refused at construction.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import polaris_native
import pytest

from tests.unit import test_redact as reference_tests
from workers.pipeline_native import native_rules_json
from workers.steps.parse import parse_line
from workers.steps.redact import RedactionRule, RedactionRules, default_rules

LOGHUB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "loghub"
def native_for(rules: RedactionRules) -> Any:
    return polaris_native.Redactor(native_rules_json(rules), rules)


def assert_same(name: str, inputs: Sequence[Any], expected: Callable[[Any], Any],
                actual: Sequence[Any]) -> None:
    assert len(actual) == len(inputs)
    differences = []
    for text, got in zip(inputs, actual, strict=True):
        want = expected(text)
        if want != got or type(want[0]) is not type(got[0]):
            differences.append(f"{text!r}:\n  python {want!r}\n  native {got!r}")
    assert not differences, f"{name}: {len(differences)} of {len(inputs)} differ:\n" + "\n".join(
        differences[:5])


def assert_texts_same(name: str, rules: RedactionRules, texts: Sequence[str]) -> None:
    assert_same(name, texts, rules.redact, native_for(rules).redact_batch(list(texts)))


# --- Loghub --------------------------------------------------------------------------------


def loghub_lines() -> list[str]:
    if not LOGHUB.is_dir():
        pytest.fail(f"Loghub data missing: expected {LOGHUB}")
    lines = []
    for path in sorted(LOGHUB.glob("*/*_2k.log")):
        lines.extend(path.read_text(encoding="utf-8", errors="replace").splitlines())
    assert len(lines) > 15_000
    return lines


def test_loghub_raw_lines() -> None:
    assert_texts_same("loghub raw lines", default_rules(), loghub_lines())


def test_loghub_parsed_messages_and_fields() -> None:
    parsed = [parse_line(line) for line in loghub_lines()]
    rules = default_rules()
    assert_texts_same("loghub messages", rules, [p.message for p in parsed])
    fields = [dict(p.fields) for p in parsed if p.fields]
    assert_same("loghub fields", fields, rules.redact_fields,
                native_for(rules).redact_fields_batch(fields))


def test_unchanged_text_is_the_same_object() -> None:
    native = native_for(default_rules())
    texts = ["nothing to see here", "user root@localhost logged in", "4242424242424241 x"]
    for text, (out, kinds) in zip(texts, native.redact_batch(texts), strict=True):
        assert out is text and kinds == ()


# --- the inputs of test_redact.py ----------------------------------------------------------


def _parametrized(test: Any) -> list[Any]:
    return [args for mark in test.pytestmark if mark.name == "parametrize"
            for args in mark.args[1]]


def reference_test_texts() -> list[str]:
    pem = reference_tests.PEM
    texts = [case[0] for case in _parametrized(reference_tests.test_each_kind_is_redacted)]
    texts += _parametrized(reference_tests.test_non_secrets_are_kept)
    texts += [
        f"loaded key:\n{pem}\nnext line stays",
        pem.rsplit("\n", 1)[0],
        json.dumps({"user": "bob", "password": "hunter2", "pin_password": 1234,
                    "api_key": "sk_live_4eC39HqLyjWDarjtT1zdp7dc"}),
        "a@b.io password=x c@d.io password=y 4111111111111111",
        "x=1 " * 250_000 + "password=hunter2",
        "jane@example.com",
        "to DE89370400440532013000 now",
        "contact jane@example.com", "short", "abc", "bob", "42",
    ]
    return texts


def test_reference_test_inputs() -> None:
    assert_texts_same("test_redact inputs", default_rules(), reference_test_texts())


def test_reference_test_fields() -> None:
    rules = default_rules()
    fields = [{"user": "bob", "db_password": "short", "refresh_token": "abc",
               "note": "contact jane@example.com", "pid": "42"}]
    assert_same("fields", fields, rules.redact_fields, native_for(rules).redact_fields_batch(fields))
    native = native_for(rules)
    for name in ["user", "db_password", "refresh_token", "X-Api-Key", "Cookie", "password\n",
                 "passwordx", "Authorization", "pässword", "tokén", ""]:
        assert native.secret_field_kind(name) == rules.secret_field_kind(name), name


def test_disabled_and_extra_rules() -> None:
    texts = reference_test_texts()
    assert_texts_same("no email", RedactionRules.load(disabled={"email"}), texts)
    with_iban = RedactionRules.load(extra=[{
        "name": "iban", "kind": "iban", "trigger_regex": r"[A-Z]{2}\d\d",
        "pattern": r"\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b", "action": "replace",
    }])
    assert_texts_same("with iban", with_iban, texts)


# --- generated secrets ---------------------------------------------------------------------


def _luhn_complete(prefix: str) -> str:
    """`prefix` plus the check digit that makes it Luhn-valid."""
    for digit in "0123456789":
        number = prefix + digit
        total = 0
        for position, char in enumerate(reversed(number)):
            value = int(char)
            if position % 2 == 1:
                value = value * 2 - 9 if value > 4 else value * 2
            total += value
        if total % 10 == 0:
            return number
    raise AssertionError(prefix)


def generated_lines() -> list[str]:
    rng = random.Random(20240611)
    alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

    def word(n: int, alphabet: str = alnum) -> str:
        return "".join(rng.choice(alphabet) for _ in range(n))

    values = ["hunter2", "s3cr3t pass", "x", "", "abc;def", "[REDACTED:password]",
              word(8), word(24), word(40, alnum + "+/_-"), word(7), "12345678901234567890",
              "ya29.a0AfH6SMBx3", 'quo"te', "back\\slash", "9f86d081884c7d659a2feaa0c55ad015"]
    keys = ["password", "PASSWORD", "db_password", "mysql.password", "passwd", "PassPhrase",
            "pwd", "user_pwd", "password_policy", "access_token", "token", "refresh-token",
            "tokens", "api_key", "apikey", "API-KEY", "access_key", "x-api-key", "key",
            "license_key", "client_secret", "secret", "credentials", "credential",
            "private_key", "private-key", "aws_secret_access_key", "keyring", "monkey"]
    lines: list[str] = []
    for key in keys:
        for value in values:
            lines += [
                f"{key}={value}", f"{key}: {value}", f"{key} = {value} trailing", f"{key}:{value},x=1",
                f"{key}='{value}'", f'{key}="{value}"', f"cfg {key}={value}&next=1; more",
                json.dumps({key: value, "n": 1}), json.dumps({"a": {key: value}}),
                f'{{"{key}": 1234, "{key}": true}}', f'{{"{key}" :  null}}',
                f"{key}={value}\n", f"{key}\x1c=\x1d{value}", f"X-{key}: {value}",
            ]
    jwt = reference_tests.JWT
    aws = reference_tests.AWS_KEY_ID
    pem = reference_tests.PEM
    for _ in range(60):
        lines += [
            f"Authorization: Bearer {word(rng.randint(4, 40), alnum + '._~+/-')}{'=' * rng.randint(0, 2)}",
            f"authorization: bearer {jwt}", f"BEARER   [REDACTED:x] {word(12)}",
            f"token {jwt[:rng.randint(10, len(jwt))]} end", f"id eyJ{word(12)}.eyJ{word(9)}. x",
            f"{'AKIA' if rng.random() < .5 else 'ASIA'}{word(16, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567')} k",
            f"key {aws}x {aws.lower()}",
            f"gh{rng.choice('pousrx')}_{word(rng.randint(30, 40))} github_pat_{word(rng.randint(20, 30), alnum + '_')}",
            f"xox{rng.choice('abposrez')}-{word(rng.randint(5, 20), alnum + '-')}",
        ]
    for _ in range(150):
        length = rng.randint(12, 20)
        prefix = rng.choice("23456789") + word(length - 2, "0123456789")
        valid = _luhn_complete(prefix)
        invalid = valid[:-1] + str((int(valid[-1]) + 1) % 10)
        for number in (valid, invalid):
            grouped = " ".join(number[i:i + 4] for i in range(0, len(number), 4))
            dashed = "-".join(number[i:i + 4] for i in range(0, len(number), 4))
            lines += [f"paid {number} ok", f"card={grouped}.", f"cc:{dashed}", f"x{number}",
                      f"n-{number}", f"{number}-1", f"v1.{number}", f"+{number}", f"({grouped})",
                      f"{number}_", f"{number}{number}", f"  {dashed}  {grouped}"]
    users = ["jane.doe", "j", "_x", "a+b", "o'neil", "%u", "9lives", "x.y.z"]
    domains = ["example.com", "a.b.co", "mail.example.co.uk", "localhost", "x.y", "a-b.io",
               "sub.example.c0m", "ex.com."]
    for user in users:
        for domain in domains:
            lines += [f"mail to {user}@{domain} failed", f"<{user}@{domain}>",
                      f"{user}@{domain},{user}@{domain}", f"user={user}@{domain}"]
    lines += [
        f"loaded key:\n{pem}\nnext", pem.replace("RSA ", ""), pem.replace("RSA", "EC"),
        "-----BEGIN PRIVATE KEY-----\nabc", "-----begin private key-----\nabc",
        f"{pem}\n{pem}", "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----",
        "password=a password=b token=cccccccccc key=dddddddddddddddddddd1 a@b.io 4111111111111111",
        "pass pwd token key secret credential private @ eyj bearer akia xox ghp_",
        "Failed password for invalid user admin from 10.0.0.1 port 22 ssh2",
        "password=\"unterminated", "password='", "password=\"\"", "token=''", 'secret="a\\"b"',
        "", " ", "\n", "password=x\n", "a\x1cpassword=\x1fy", "PASSWORD=é", "naïve password=x",
        "mail josé@example.com", "ключ password=секрет", "tab\tpassword\t=\tvalue",
    ]
    return lines


def test_generated_secrets() -> None:
    lines = generated_lines()
    assert_texts_same("generated", default_rules(), lines)
    changed = sum(default_rules().redact(line)[0] != line for line in lines)
    assert changed > len(lines) // 3  # many of them are secrets


def test_generated_fields() -> None:
    rules = default_rules()
    lines = generated_lines()
    names = ["user", "password", "db_pwd", "token", "api_key", "note", "Cookie", "msg",
             "authorization", "private_key", "credentials", "secretary", "ñame"]
    batch = [{name: lines[(i * 7 + j) % len(lines)] for j, name in enumerate(names)}
             for i in range(300)]
    batch.append({"password": "", "token": "", "note": ""})
    assert_same("generated fields", batch, rules.redact_fields,
                native_for(rules).redact_fields_batch(batch))


# --- the pattern translation ---------------------------------------------------------------

ZOO_TEXTS = [
    "abc", "abc\n", "abc\n\n", "ABC abc", "a b\nc d", "x\x1cy", "x\x1fy z", "a{2}b", "aa{b}",
    "a]b", "a^b", "-x-", "tab\there", "[a]", "aXa aYa", "q-1", "end.", "7 77 777",
    "foo=bar; foo=baz", "line1\nline2\nline3", "café", "\x07bell", "a\\b", "#hash x",
    "ab ab. xab yb", "4111111111111111 x-4111111111111111 .4111111111111111", "yz xz z",
    "abc\ndef", "key=abc key=[REDACTED:x] key=abcdefgh", "12345 a12345 _12345",
]
ZOO_PATTERNS: list[tuple[str, list[str]]] = [
    (r"c$", []), (r"c\Z", []), (r"^a", []), (r"^l\w+$", ["MULTILINE"]), (r"\s", []),
    (r"\S+", []), (r"[\s]", []), (r"[^\S]", []), (r"x\sy", []), (r"a{2}", []),
    (r"a\{2}", []), (r"a{,2}b", []), (r"{b}", []), (r"a{", []), (r"[]a]", []), (r"[^]a]+", []),
    (r"[a-]", []), (r"[-a]", []), (r"\^", []), (r"[\^]", []), (r"[\]]", []),
    (r"a . b", []), (r"a[ ]b", []), (r"a\ b", []), (r"a # comment\n b", []),
    (r"\#", []), (r"[#]", []), (r"(?P<v>\w)(?P=v)", []), (r"(\w)\1", []), (r"(?<=a)b", []),
    (r"(?<![\w.])\d+", []), (r"\w+(?=\n)", []), (r"(?i:abc)", []), (r"(?i)abc", []),
    (r"ABC", ["IGNORECASE"]), (r"(?-i:a)BC", ["IGNORECASE"]), (r"[a-c]+", ["IGNORECASE"]),
    (r"[Z-a]+", ["IGNORECASE"]), (r"\bX", ["IGNORECASE"]), (r"line.\nl", ["DOTALL"]),
    (r"e.l", []), (r"e.l", ["DOTALL"]), (r"\x41\u0062\U00000063", []), (r"\101", []),
    (r"\0", []), (r"[\0-\x08]", []), (r"\a|\t", []), (r"\\", []), (r"[\\]", []),
    (r"\d+(?:\.\d+)?", []), (r"(?#comment)7", []), (r"(?x) 7 7", []), (r"(?s)2.*", []),
    (r"foo=(?P<value>\w+)", []), (r"\Bb", []), (r"[\w-]+", []), (r"[^\W\d]+", []),
    (r"(?>a|ab)c", []), (r"é|ca", []), (r"[à-ÿ]", []), (r"\x1c|\x1F", []),
    (r"(?<!a)b", []), (r"(?<=a)b|z", []), (r"(?<=ab)\.", []), (r"(?<!x)(?<=y)z", []),
    (r"(?i)(?<=A)B", []), (r"(?<=\b)x", []), (r"(?<=a\b)\s", []), (r"(?<!^)\d+", []),
    (r"(?<![\w.+-])[2-6]\d{3}(?:[ -]?\d){9,15}(?![\w-])", []), (r"x(?=abc)|z(?!z)", []),
    (r"\d+(?=\s|$)", []), (r"(?<=(?=a)a)b", []), (r"(?<=a)(?<!aa)b", []),
    (r"key=(?P<value>(?!\[REDACTED)[^\s]{8,})", []), (r"(?<![a-z])\d+(?![a-z])", []),
]


def zoo_rules(patterns: Iterable[tuple[str, list[str]]]) -> RedactionRules:
    rules = []
    for index, (pattern, flags) in enumerate(patterns):
        spec: dict[str, Any] = {"name": f"zoo{index}", "kind": f"k{index}", "pattern": pattern,
                                "flags": flags, "action": "replace",
                                "trigger": [""] if index % 2 else [], "trigger_regex": "."}
        if "value" in pattern:
            spec["action"] = "replace_value"
        rules.append(RedactionRule.from_mapping(spec))
    return RedactionRules(rules)


@pytest.mark.parametrize("index", range(len(ZOO_PATTERNS)))
def test_pattern_translation(index: int) -> None:
    rules = zoo_rules([ZOO_PATTERNS[index]])
    assert_texts_same(f"pattern {ZOO_PATTERNS[index]!r}", rules, ZOO_TEXTS)


def test_rule_order_and_kinds_across_rules() -> None:
    rules = zoo_rules(ZOO_PATTERNS)
    assert_texts_same("all zoo rules", rules, ZOO_TEXTS)


FUZZ_PATTERNS: list[tuple[str, list[str]]] = [
    (r"(?<![\w.])\d{3,5}(?![\w-])", []), (r"(?<=[ab])1+", []), (r"(?<!b)a+(?=1|$)", []),
    (r"(?<![a-z])B\d", ["IGNORECASE"]), (r"(?<=-)\w+\b", []), (r"(?<!^)a\s*1", []),
    (r"(?<!a)(?<=\d)-", []), (r"a(?!b)|1(?<=-1)", []), (r"\b\d+(?:\.\d+)*\b(?![.])", []),
    (r"(?<=\s)4\d{2,}(?=\s|\Z)", []), (r"(?<!\.)(?P<value>[ab]{2,})$", []),
    (r"^a.*?1", ["MULTILINE"]), (r"(?<![a1])(?:ab|1-)+", []),
]


@pytest.mark.parametrize("index", range(len(FUZZ_PATTERNS)))
def test_lookaround_fuzz(index: int) -> None:
    rng = random.Random(index)
    texts = ["".join(rng.choice("ab1-. \n4Bx") for _ in range(rng.randint(1, 30)))
             for _ in range(3000)]
    rules = zoo_rules([FUZZ_PATTERNS[index]])
    assert_texts_same(f"fuzz {FUZZ_PATTERNS[index]!r}", rules, texts)


# --- refused rules -------------------------------------------------------------------------


def _spec(**changes: Any) -> dict[str, Any]:
    spec = {"name": "custom", "kind": "x", "trigger": ["x"], "pattern": "x+", "action": "replace"}
    spec.update(changes)
    return spec


@pytest.mark.parametrize(
    "spec",
    [
        _spec(pattern="("),                                   # Python refuses it too
        _spec(action="replace_value"),                        # no value group
        _spec(action="mask_email"),                           # no first/domain groups
        _spec(action="shred"),
        _spec(trigger=[]),                                    # no trigger at all
        _spec(flags=["VERBOSE!"]),
        _spec(pattern=r"x\N{BULLET}"),                        # cannot honour: named escape
        _spec(pattern=r"x*+"),                                # possessive
        _spec(pattern=r"(x)?(?(1)a|b)"),                      # conditional
        _spec(pattern="é", flags=["IGNORECASE"]),             # Python's Unicode case folding
        _spec(pattern=r"(x)\1", flags=["IGNORECASE"]),        # fancy-regex's backrefs keep case
        _spec(pattern=r"(?i)(?P<v>x)(?P=v)"),
        _spec(pattern="x*"),                                  # empty matches
    ],
)
def test_rules_that_cannot_be_honoured_are_refused(spec: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="custom"):
        polaris_native.Redactor(json.dumps({"rules": [spec], "field_names": []}))


def test_non_ascii_text_needs_the_reference() -> None:
    native = polaris_native.Redactor(native_rules_json(default_rules()))
    assert native.redact("plain") == ("plain", ())
    with pytest.raises(ValueError):
        native.redact("naïve password=x")


def test_surrogates_go_to_the_reference() -> None:
    rules = default_rules()
    texts = ["bad \udcff password=x", "\udcff"]
    assert_texts_same("surrogates", rules, texts)
    fields = [{"pass\udcffword": "x", "token": "\udcffabc", "note": "a@b.io \udcff"}]
    assert_same("surrogate fields", fields, rules.redact_fields,
                native_for(rules).redact_fields_batch(fields))


def test_texts_beyond_the_vm_limits_go_to_the_reference() -> None:
    # A 1.8 MB value exceeds the backtracking VM's stack; Python's `re` has no limit.
    assert_texts_same("huge values", default_rules(),
                      ["password=" * 200_000, "token=[REDACTED " * 50_000, "key " * 200_000])


def test_a_match_without_its_value_group_raises_like_the_reference() -> None:
    rules = zoo_rules([(r"key=(?:(?P<value>x+)|y)", [])])
    native = native_for(rules)
    assert native.redact("key=xx") == rules.redact("key=xx")
    with pytest.raises(TypeError):
        rules.redact("key=y")
    with pytest.raises(TypeError):
        native.redact("key=y")
