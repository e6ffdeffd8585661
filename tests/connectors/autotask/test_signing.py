"""X-Hook-Signature: HMAC-SHA1 base64 with sha1=, over the raw or the .NET-escaped body."""

from __future__ import annotations

import json

import pytest

from connectors.autotask.sandbox import dotnet_body
from connectors.autotask.signing import dotnet_escape, sign, signature_ok
from tests.connectors.autotask.conftest import SECRET, fixture_bytes


def test_a_raw_body_signature_verifies() -> None:
    """The plain case: the body on the wire is what was signed."""
    body = fixture_bytes("webhook_ticket_create.json")

    assert signature_ok(body, sign(body, SECRET), SECRET)


def test_non_ascii_names_verify_when_autotask_signed_its_escaped_form() -> None:
    """José Müller & Co + 😀 <test> arrives as raw UTF-8, but Autotask signed the .NET
    serialisation (\\u00E9, \\u0026, surrogate pairs …): the fallback accepts it."""
    body = fixture_bytes("webhook_ticket_update.json")
    signed = dotnet_body(json.loads(body))  # the sandbox's independent serialiser
    assert signed != body and b"\\u00E9" in signed and b"\\uD83D\\uDE00" in signed

    assert signature_ok(body, sign(signed, SECRET), SECRET)
    assert dotnet_escape(body.decode()).encode() == signed


@pytest.mark.parametrize("header", [
    None, "", "sha1=", "sha1=AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "sha256=whatever",
])
def test_wrong_or_missing_signatures_are_refused(header: str | None) -> None:
    """Nothing but the right HMAC passes."""
    assert not signature_ok(fixture_bytes("webhook_ticket_update.json"), header, SECRET)


def test_the_wrong_secret_is_refused() -> None:
    """A signature made with another key fails both candidates."""
    body = fixture_bytes("webhook_ticket_update.json")

    assert not signature_ok(body, sign(dotnet_body(json.loads(body)), "another-secret-000000"),
                            SECRET)


def test_escaping_touches_only_string_contents() -> None:
    """Structure, numbers and existing escapes are kept; \\" becomes \\u0022."""
    text = '{"a+b":"x\\"y & z","n":1,"u":"\\u00e9"}'

    assert dotnet_escape(text) == '{"a\\u002Bb":"x\\u0022y \\u0026 z","n":1,"u":"\\u00e9"}'
