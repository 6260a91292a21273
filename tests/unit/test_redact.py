"""Unit tests for workers/steps/redact.py: each secret kind redacted, non-secrets kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workers.steps.redact import (
    RedactionConfigError,
    RedactionRules,
    luhn_valid,
    redact,
    redact_fields,
)

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

# AWS documentation's example credentials
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
# jwt.io's example token
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9"
       "lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
PEM = ("-----BEGIN RSA PRIVATE KEY-----\n"
       "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n"
       "aFDrBz9vFqU4yB9gG5i8bC1nQ2zR3wY9l8D9cS1Z0k5uT4L6rGx3b2n1h0J5k4lM\n"
       "-----END RSA PRIVATE KEY-----")


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ("login ok password=hunter2 user=bob",
         "login ok password=[REDACTED:password] user=bob", "password"),
        ("DB_PASSWD: 's3cr3t pass'", "DB_PASSWD: '[REDACTED:password]'", "password"),
        ("conn mysql.password=abc;host=db", "conn mysql.password=[REDACTED:password];host=db",
         "password"),
        ("retry with access_token=ya29.a0AfH6SMBx3 now",
         "retry with access_token=[REDACTED:token] now", "token"),
        ("client_secret: 8f14e45fceea167a5a36dedd4bea2543",
         "client_secret: [REDACTED:secret]", "secret"),
        (f"aws_access_key_id={AWS_KEY_ID}", "aws_access_key_id=[REDACTED:aws_access_key]",
         "aws_access_key"),
        (f"key {AWS_KEY_ID} rotated", "key [REDACTED:aws_access_key] rotated", "aws_access_key"),
        ("push with ghp_16C7e42F292c6912E7710c838347Ae178B4a ok",
         "push with [REDACTED:github_token] ok", "github_token"),
        ("SLACK=xoxb-263594206564-2343594206574-FGqddMF8t08v8N7Oq4i57vs1",
         "SLACK=[REDACTED:slack_token]", "slack_token"),
        ("Authorization: Bearer mF_9.B5f-4.1JqM", "Authorization: Bearer [REDACTED:bearer_token]",
         "bearer_token"),
        (f"session {JWT} expired", "session [REDACTED:jwt] expired", "jwt"),
        ("X-Api-Key: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b", "X-Api-Key: [REDACTED:api_key]",
         "api_key"),
        ("license key=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA used", "license key=[REDACTED:api_key] used",
         "api_key"),
        ("paid with 4242 4242 4242 4242 today", "paid with [REDACTED:credit_card] today",
         "credit_card"),
        ("amex 378282246310005.", "amex [REDACTED:credit_card].", "credit_card"),
        ("card=5555-5555-5555-4444", "card=[REDACTED:credit_card]", "credit_card"),
        ("mail to jane.doe@example.com failed", "mail to j***@example.com failed", "email"),
    ],
)
def test_each_kind_is_redacted(text: str, expected: str, kind: str) -> None:
    assert redact(text) == (expected, (kind,))


def test_pem_private_key_multi_line() -> None:
    redacted, kinds = redact(f"loaded key:\n{PEM}\nnext line stays")
    assert redacted == "loaded key:\n[REDACTED:private_key]\nnext line stays"
    assert kinds == ("private_key",)


def test_truncated_pem_is_redacted_to_the_end() -> None:
    redacted, _ = redact(PEM.rsplit("\n", 1)[0])
    assert redacted == "[REDACTED:private_key]"


def test_json_secrets_keep_valid_json() -> None:
    text = json.dumps({"user": "bob", "password": "hunter2", "pin_password": 1234,
                       "api_key": "sk_live_4eC39HqLyjWDarjtT1zdp7dc"})
    redacted, kinds = redact(text)
    assert json.loads(redacted) == {"user": "bob", "password": "[REDACTED:password]",
                                    "pin_password": "[REDACTED:password]",
                                    "api_key": "[REDACTED:api_key]"}
    assert kinds == ("password", "api_key")


def test_several_kinds_listed_once_in_order() -> None:
    text = "a@b.io password=x c@d.io password=y 4111111111111111"
    redacted, kinds = redact(text)
    assert kinds == ("password", "credit_card", "email")
    assert "x " not in redacted and "4111" not in redacted


@pytest.mark.parametrize(
    "text",
    [
        "4242424242424241 is Luhn-invalid",          # 16 digits, fails the checksum
        "blk_-6952295868487656571 size 67108864",    # HDFS block id
        "1117838570 2005.06.03 R02-M1-N0-C:J12-U11",  # BGL epoch + node
        "Failed password for invalid user admin from 10.0.0.1 port 22 ssh2",
        "password_policy=strict token_count=5 tokens: 3",
        "Token: Token { kind: ContainerToken, service: 10.0.0.1:28345 }",
        "QuorumCnxManager$Listener@493 - Received connection request",
        "user root@localhost logged in",
        "",
    ],
)
def test_non_secrets_are_kept(text: str) -> None:
    assert redact(text) == (text, ())


def test_luhn() -> None:
    assert luhn_valid("4242424242424242")
    assert luhn_valid("378282246310005")
    assert not luhn_valid("4242424242424241")


def test_huge_line_is_handled() -> None:
    text = "x=1 " * 250_000 + "password=hunter2"
    redacted, kinds = redact(text)
    assert redacted.endswith("password=[REDACTED:password]") and kinds == ("password",)


def test_redact_fields_by_name_and_by_value() -> None:
    fields = {"user": "bob", "db_password": "short", "refresh_token": "abc",
              "note": "contact jane@example.com", "pid": "42"}
    redacted, kinds = redact_fields(fields)
    assert redacted == {"user": "bob", "db_password": "[REDACTED:password]",
                        "refresh_token": "[REDACTED:token]",
                        "note": "contact j***@example.com", "pid": "42"}
    assert kinds == ("password", "token", "email")
    assert fields["db_password"] == "short"  # input not mutated


def test_rules_can_be_disabled_and_added() -> None:
    no_email = RedactionRules.load(disabled={"email"})
    assert redact("jane@example.com", no_email) == ("jane@example.com", ())
    with_iban = RedactionRules.load(extra=[{
        "name": "iban", "kind": "iban", "trigger_regex": r"[A-Z]{2}\d\d",
        "pattern": r"\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b", "action": "replace",
    }])
    assert redact("to DE89370400440532013000 now", with_iban) == (
        "to [REDACTED:iban] now", ("iban",))


def test_bad_rule_configuration_fails_at_load() -> None:
    with pytest.raises(RedactionConfigError):
        RedactionRules.load(disabled={"no_such_rule"})
    with pytest.raises(RedactionConfigError):
        RedactionRules.load(extra=[{"name": "x", "kind": "x", "pattern": "(", "trigger": ["x"],
                                    "action": "replace"}])
    with pytest.raises(RedactionConfigError):
        RedactionRules.load(extra=[{"name": "x", "kind": "x", "pattern": "x",
                                    "trigger": ["x"], "action": "replace_value"}])


def test_loghub_lines_are_not_over_redacted() -> None:
    loghub = SHARED_DATA / "loghub"
    if not loghub.is_dir():
        pytest.fail(f"Loghub data missing: expected {loghub} (see ../shared/data/README.md)")
    changed = []
    for path in sorted(loghub.glob("*/*_2k.log")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            redacted, kinds = redact(line)
            if redacted != line:
                changed.append(kinds)
    # The only personal datum in the samples: the kernel builder's e-mail in Linux.
    assert changed == [("email",)]
