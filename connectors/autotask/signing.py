"""Autotask webhook signatures: ``X-Hook-Signature: sha1=<base64 HMAC-SHA1(secretKey, body)>``.

Autotask computes the HMAC over its own .NET JSON serialisation of the payload. That
serialiser writes every non-ASCII character, and ``& < > ' + `` ` `` and ``"`` inside
strings, as ``\\u`` escapes of four upper-case hex digits (UTF-16 code units), while the
body on the wire may carry the characters themselves. So the signature is checked against the raw
body first and then against the body re-escaped the .NET way; either match is accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

PREFIX = "sha1="
# Inside JSON strings the .NET serialiser escapes these ASCII characters too.
_ASCII_ESCAPED = frozenset("&<>'+`")


def _escape_char(char: str) -> str:
    """``char`` as .NET's ``\\u`` escape(s) of four hex digits; astral characters become
    two code units."""
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04X}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}"


def dotnet_escape(text: str) -> str:
    """Re-escape the string literals of a JSON text as Autotask's serialiser writes them.

    Outside strings nothing changes. Inside, existing escapes are kept except ``\\"``,
    which becomes ``\\u0022``; the characters above become ``\\u + four hex digits``.
    """
    out: list[str] = []
    in_string = False
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if not in_string:
            out.append(char)
            in_string = char == '"'
        elif char == "\\" and i + 1 < n:
            following = text[i + 1]
            out.append("\\u0022" if following == '"' else char + following)
            i += 1
        elif char == '"':
            out.append(char)
            in_string = False
        elif char in _ASCII_ESCAPED or ord(char) > 0x7E:
            out.append(_escape_char(char))
        else:
            out.append(char)
        i += 1
    return "".join(out)


def sign(body: bytes, secret: str) -> str:
    """The header value Autotask sends for ``body``: ``sha1=`` + base64 HMAC-SHA1."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha1).digest()
    return PREFIX + base64.b64encode(digest).decode("ascii")


def candidates(body: bytes) -> list[bytes]:
    """The byte strings Autotask may have signed for a delivered ``body``."""
    out = [body]
    try:
        escaped = dotnet_escape(body.decode("utf-8")).encode("utf-8")
    except UnicodeDecodeError:
        return out
    if escaped != body:
        out.append(escaped)
    return out


def signature_ok(body: bytes, header: str | None, secret: str) -> bool:
    """True when ``header`` is Autotask's signature of ``body`` (raw or .NET-escaped)."""
    if not header:
        return False
    presented = header.strip()
    if presented[:len(PREFIX)].lower() == PREFIX:
        presented = presented[len(PREFIX):]
    expected = [sign(candidate, secret)[len(PREFIX):] for candidate in candidates(body)]
    # compare every candidate (no early exit on the first), constant time each
    matches = [hmac.compare_digest(presented.encode(), e.encode()) for e in expected]
    return any(matches)
