"""structlog set-up: one pipeline for the hub's and third-party loggers, secrets redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal, TextIO

import structlog
from pydantic import SecretBytes, SecretStr
from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["auto", "console", "json"]

REDACTED = "***"

# A key is secret when its normalized name (lower case, "-" → "_") contains one of these.
# Over-redaction (e.g. "tokens_used") is the accepted price of never printing a secret.
SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "private_key",
    "api_key",
    "apikey",
    "signing_key",
    "credential",
    "cookie",
)

# Loggers that install their own handlers; theirs are removed so records reach ours.
THIRD_PARTY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "alembic", "dramatiq")

# scheme://user:password@host → scheme://user:***@host (also redis://:password@host).
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)[^@/\s]+(?=@)")

_HANDLER_MARK = "_msphub_handler"


def redact_url(text: str) -> str:
    """Replace the password of every ``scheme://user:password@host`` in ``text``."""
    return _URL_PASSWORD.sub(rf"\g<head>{REDACTED}", text)


def is_secret_key(key: object) -> bool:
    """True when a mapping key names a secret (``api_key``, ``X-Api-Key``, ``db_password``…)."""
    if not isinstance(key, str):
        return False
    name = key.lower().replace("-", "_")
    return any(part in name for part in SECRET_KEY_PARTS)


def _redact_value(value: Any) -> Any:
    if isinstance(value, SecretStr | SecretBytes):
        return REDACTED
    if isinstance(value, str):
        return redact_url(value) if "://" in value else value
    if isinstance(value, Mapping):
        return {k: REDACTED if is_secret_key(k) else _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        # Rendered as JSON arrays anyway; exc_info tuples are text by now (format_exc_info).
        return [_redact_value(v) for v in value]
    return value


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secret-named keys, ``SecretStr`` values and URL passwords.

    Walks nested dicts and lists. Runs last before rendering, so it also covers
    records from stdlib loggers and formatted tracebacks.
    """
    return {
        key: REDACTED if is_secret_key(key) else _redact_value(value)
        for key, value in event_dict.items()
    }


def resolve_format(fmt: LogFormat, stream: TextIO) -> Literal["console", "json"]:
    """``auto`` becomes ``console`` on a terminal and ``json`` otherwise."""
    if fmt != "auto":
        return fmt
    return "console" if _isatty(stream) else "json"


def configure_logging(
    fmt: LogFormat = "auto",
    level: str | int = "INFO",
    *,
    stream: TextIO | None = None,
) -> None:
    """Set up structlog and route stdlib logging (uvicorn, alembic, dramatiq) through it.

    Safe to call again: the last call wins and handlers never pile up. Handlers that
    others put on the root logger (pytest's ``caplog``) are left alone.

    Args:
        fmt: ``console``, ``json``, or ``auto`` (console when ``stream`` is a TTY).
        level: a level name (``"info"``, ``"DEBUG"``) or number.
        stream: where to write; standard error by default.
    """
    out = stream if stream is not None else sys.stderr
    numeric_level = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric_level, int):
        raise ValueError(f"unknown log level: {level!r}")

    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    # Applied to structlog calls before handing over to stdlib, and to stdlib records
    # (foreign_pre_chain) so both carry the same keys.
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
        structlog.processors.StackInfoRenderer(),
    ]

    renderer: Processor
    if resolve_format(fmt, out) == "console":
        # Plain tracebacks: the rich default prints local variables, which may hold secrets.
        renderer = structlog.dev.ConsoleRenderer(
            colors=_isatty(out), exception_formatter=structlog.dev.plain_traceback
        )
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _drop_formatted_message],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Tracebacks become text before redaction, so URL passwords in them are masked.
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(numeric_level)

    for name in THIRD_PARTY_LOGGERS:
        lib_logger = logging.getLogger(name)
        lib_logger.handlers.clear()
        lib_logger.propagate = True
    # Alembic narrates every plugin and migration step at INFO; its warnings are enough,
    # unless DEBUG was asked for.
    alembic_level = numeric_level if numeric_level < logging.INFO else logging.WARNING
    logging.getLogger("alembic").setLevel(max(numeric_level, alembic_level))

    structlog.configure(
        processors=[
            # Level lives on the stdlib root logger, so a later call can change it even
            # for loggers structlog has already cached.
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # not cached: a cached proxy would ignore later reconfiguration (tests, CLI)
        cache_logger_on_first_use=False,
    )


@contextmanager
def bind_context(**ids: Any) -> Iterator[None]:
    """Bind ids (``request_id``, ``run_id``, ``source``…) to every log line in the block.

    ``None`` values are skipped, so optional ids can be passed unconditionally. The
    previous values come back when the block exits, also on error.
    """
    with structlog.contextvars.bound_contextvars(
        **{key: value for key, value in ids.items() if value is not None}
    ):
        yield


def _drop_formatted_message(
    _logger: WrappedLogger, _method: str, event_dict: EventDict
) -> EventDict:
    # Another handler's Formatter may already have set record.message, which ExtraAdder
    # then copies as an "extra"; it only repeats the event.
    if event_dict.get("message") == event_dict.get("event"):
        event_dict.pop("message", None)
    return event_dict


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


def _dumps(obj: Any, **kwargs: Any) -> str:
    # datetimes, Paths, UUIDs and enums render as their str() rather than repr().
    kwargs.setdefault("default", str)
    return json.dumps(obj, **kwargs)
