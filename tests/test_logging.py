"""Logging: JSON and console output, secret redaction, stdlib routing and bound context."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from hub.logging import (
    REDACTED,
    bind_context,
    configure_logging,
    is_secret_key,
    redact_url,
    resolve_format,
)

Configure = Callable[..., io.StringIO]


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def configure() -> Iterator[Configure]:
    """Configure logging into a StringIO; restore structlog and the root logger afterwards."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)

    def _configure(fmt: str = "json", level: str = "DEBUG", stream: Any = None) -> io.StringIO:
        out = stream if stream is not None else io.StringIO()
        configure_logging(fmt, level, stream=out)  # type: ignore[arg-type]
        return out  # type: ignore[no-any-return]

    yield _configure
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def test_json_output_parses_with_standard_keys(configure: Configure) -> None:
    """Each JSON line is an object with event, level, logger and an ISO UTC timestamp."""
    out = configure("json")

    structlog.get_logger("hub.test").info("poll_finished", source="cw-prod", events=3)

    [line] = _lines(out)
    assert line["event"] == "poll_finished"
    assert line["level"] == "info"
    assert line["logger"] == "hub.test"
    assert (line["source"], line["events"]) == ("cw-prod", 3)
    stamp = datetime.fromisoformat(line["timestamp"])
    assert stamp.utcoffset() == UTC.utcoffset(None)


def test_secrets_are_redacted(configure: Configure) -> None:
    """Secret-named keys, SecretStr values and URL passwords never reach the output."""
    out = configure("json")

    structlog.get_logger("hub.test").info(
        "connecting",
        password="leak01",
        api_key="leak02",
        client_secret="leak03",
        access_token="leak04",
        signing_key="leak05",
        private_key="leak06",
        value=SecretStr("leak07"),
        headers={"Authorization": "Bearer leak08", "X-Api-Key": "leak09", "Accept": "json"},
        dsn="postgresql+psycopg://hub:leak10@db:5432/msphub",
        items=[{"token": "leak11"}, "redis://:leak12@cache:6379/0"],
        dedupe_key="ticket-42",
    )

    assert "leak" not in out.getvalue()
    [line] = _lines(out)
    assert line["password"] == line["api_key"] == line["value"] == REDACTED
    assert line["headers"] == {"Authorization": REDACTED, "X-Api-Key": REDACTED, "Accept": "json"}
    assert line["dsn"] == "postgresql+psycopg://hub:***@db:5432/msphub"
    assert line["items"] == [{"token": REDACTED}, "redis://:***@cache:6379/0"]
    assert line["dedupe_key"] == "ticket-42"  # "key" alone is not a secret


def test_console_output_is_redacted_too(configure: Configure) -> None:
    """The development console renderer gets the same redaction as JSON."""
    out = configure("console")

    structlog.get_logger("hub.test").warning("auth_failed", api_key="abc123", source="halo")

    text = out.getvalue()
    assert "auth_failed" in text
    assert "abc123" not in text
    assert f"api_key={REDACTED}" in text
    assert "source=halo" in text


def test_stdlib_loggers_go_through_the_same_pipeline(configure: Configure) -> None:
    """uvicorn/alembic/dramatiq records come out as the same JSON, redacted, with extras."""
    out = configure("json")
    uvicorn_error = logging.getLogger("uvicorn.error")
    uvicorn_error.addHandler(logging.NullHandler())  # as if uvicorn had set up its own
    configure("json", stream=out)

    uvicorn_error.warning("started on %s", "0.0.0.0:8000", extra={"token": "tok-1"})
    logging.getLogger("dramatiq.worker").info("worker started")

    first, second = _lines(out)
    assert first["event"] == "started on 0.0.0.0:8000"
    assert first["logger"] == "uvicorn.error"
    assert first["level"] == "warning"
    assert first["token"] == REDACTED
    assert "timestamp" in first
    assert "message" not in first  # not a copy of the event from other handlers' formatting
    assert (second["logger"], second["event"]) == ("dramatiq.worker", "worker started")
    assert uvicorn_error.handlers == []
    assert uvicorn_error.propagate is True


def test_alembic_info_is_quiet_unless_debugging(configure: Configure) -> None:
    """Alembic's step-by-step INFO lines show only at DEBUG; its warnings always show."""
    alembic = logging.getLogger("alembic.runtime.migration")
    out = configure("json", "INFO")
    alembic.info("Running upgrade -> 0001")
    alembic.warning("nothing to do")
    configure("json", "DEBUG", stream=out)
    alembic.info("Context impl PostgresqlImpl")

    events = [line["event"] for line in _lines(out)]
    assert events == ["nothing to do", "Context impl PostgresqlImpl"]


def test_exceptions_are_rendered_with_urls_masked(configure: Configure) -> None:
    """log.exception() adds the traceback as text, with URL passwords masked."""
    out = configure("json")

    try:
        raise ConnectionError("cannot reach postgresql://hub:pass-1@db/msphub")
    except ConnectionError:
        structlog.get_logger("hub.test").exception("db_unreachable")

    [line] = _lines(out)
    assert "Traceback" in line["exception"]
    assert "ConnectionError" in line["exception"]
    assert "pass-1" not in line["exception"]


def test_bind_context_adds_ids_and_restores(configure: Configure) -> None:
    """Ids bound in the block appear on every line inside it and are gone after it."""
    out = configure("json")
    log = structlog.get_logger("hub.test")

    with bind_context(request_id="req-1", run_id=None):
        log.info("outer")
        with bind_context(run_id=7, source="cw-prod"):
            log.info("inner")
        log.info("outer_again")
    log.info("after")

    outer, inner, outer_again, after = _lines(out)
    assert outer["request_id"] == "req-1"
    assert "run_id" not in outer  # None is not bound
    assert (inner["request_id"], inner["run_id"], inner["source"]) == ("req-1", 7, "cw-prod")
    assert "run_id" not in outer_again and "source" not in outer_again
    assert "request_id" not in after


def test_bind_context_restores_after_an_error(configure: Configure) -> None:
    """The block's ids are removed even when the block raises."""
    out = configure("json")

    with pytest.raises(RuntimeError), bind_context(run_id=1):
        raise RuntimeError("boom")
    structlog.get_logger("hub.test").info("after")

    [line] = _lines(out)
    assert "run_id" not in line


def test_level_filters_and_can_be_changed(configure: Configure) -> None:
    """Lines below the level are dropped; reconfiguring changes the level for existing loggers."""
    out = configure("json", "WARNING")
    log = structlog.get_logger("hub.test")
    log.info("dropped")
    log.warning("kept")

    configure("json", "debug", stream=out)
    log.debug("now_kept")

    assert [line["event"] for line in _lines(out)] == ["kept", "now_kept"]


def test_reconfiguring_does_not_stack_handlers(configure: Configure) -> None:
    """Calling configure_logging twice prints each line once and keeps foreign handlers."""
    foreign = logging.NullHandler()
    logging.getLogger().addHandler(foreign)
    try:
        out = configure("json")
        configure("json", stream=out)
        structlog.get_logger("hub.test").info("once")

        assert [line["event"] for line in _lines(out)] == ["once"]
        assert foreign in logging.getLogger().handlers
    finally:
        logging.getLogger().removeHandler(foreign)


def test_auto_format_follows_the_terminal() -> None:
    """``auto`` is console on a TTY and JSON otherwise; explicit formats are kept."""
    assert resolve_format("auto", _TTY()) == "console"
    assert resolve_format("auto", io.StringIO()) == "json"
    assert resolve_format("json", _TTY()) == "json"
    assert resolve_format("console", io.StringIO()) == "console"


def test_auto_format_writes_json_when_not_a_terminal(configure: Configure) -> None:
    """With ``auto`` and a pipe or file, output is machine-readable JSON."""
    out = configure("auto")
    structlog.get_logger("hub.test").info("hello")
    assert _lines(out)[0]["event"] == "hello"


def test_unknown_level_is_rejected() -> None:
    """A level name logging does not know raises ValueError instead of logging everything."""
    with pytest.raises(ValueError, match="chatty"):
        configure_logging("json", "chatty", stream=io.StringIO())


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("DB_PASSWORD", True),
        ("Authorization", True),
        ("x-api-key", True),
        ("refresh_token", True),
        ("signing_key", True),
        ("secret_key", True),
        ("dedupe_key", False),
        ("event", False),
        ("ticket_id", False),
    ],
)
def test_secret_key_names(key: str, secret: bool) -> None:
    """Key matching is case-insensitive, treats '-' as '_', and leaves ordinary keys alone."""
    assert is_secret_key(key) is secret


def test_redact_url_keeps_everything_but_the_password() -> None:
    """Only the password part of a URL is replaced; URLs without one are unchanged."""
    assert redact_url("postgresql://u:p@h:5432/db?x=1") == "postgresql://u:***@h:5432/db?x=1"
    assert redact_url("redis://:p@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact_url("http://127.0.0.1:8000/x") == "http://127.0.0.1:8000/x"
