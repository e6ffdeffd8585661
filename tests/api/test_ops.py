"""Health, metrics, request ids, OpenAPI docs and the playbook endpoints."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from hub.api import create_app
from hub.services.tokens import Role
from hub.store.db import make_engine
from tests.api.conftest import Api


def _sample(metrics: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, or None when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "")
    match = re.search(rf"^{pattern} (\S+)$", metrics, re.MULTILINE)
    return float(match.group(1)) if match else None


def test_healthz_reports_ok_without_a_token(api: Api) -> None:
    """/healthz needs no token and checks the database."""
    response = api.http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_healthz_is_503_when_the_database_is_down(api: Api, tmp_path: Path) -> None:
    """An unreachable database gives 503 (and no 500)."""
    # Given an app whose database cannot be opened
    dead = make_engine(f"sqlite:///file:{tmp_path}/missing/dir/x.db?mode=ro&uri=true")
    app = create_app(dataclasses.replace(api.rt, ctx=dataclasses.replace(api.ctx, engine=dead)))
    # When /healthz is called, then it says the database is unreachable
    with TestClient(app) as http:
        response = http.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable"}
    dead.dispose()


def test_metrics_count_requests_runs_and_overdue_steps(api: Api) -> None:
    """Request counters by route template, launched/completed counters, live gauges."""
    # Given two runs launched, one of them cancelled, and a few reads
    run_id = api.launch()["id"]
    other = api.launch(client="19300")["id"]
    api.post(f"/api/runs/{other}/cancel", Role.MANAGER, {})
    api.get(f"/api/runs/{run_id}")
    api.get("/api/runs/424242")
    api.http.get("/no/such/page")
    # When the clock passes the deadlines (offboarding v2: revocation is due 4 hours after
    # the last day's 17:00, 2025-03-07) and metrics are scraped (no token)
    api.clock.advance(days=5)
    text = api.http.get("/metrics")
    assert text.status_code == 200
    assert text.headers["content-type"].startswith("text/plain")
    metrics = text.text
    # Then requests are counted under their route template, not the raw path
    assert _sample(metrics, "msphub_http_requests_total", method="GET",
                   route="/api/runs/{run_id}", status="200") == 1
    assert _sample(metrics, "msphub_http_requests_total", method="GET",
                   route="/api/runs/{run_id}", status="404") == 1
    assert _sample(metrics, "msphub_http_requests_total", method="GET",
                   route="<unmatched>", status="404") == 1
    assert _sample(metrics, "msphub_http_request_duration_seconds_count", method="POST",
                   route="/api/runs") == 2
    # And runs launched and the gauges computed at scrape time are there
    assert _sample(metrics, "msphub_runs_launched_total", playbook="user-offboarding") == 2
    assert _sample(metrics, "msphub_runs_cancelled_total", playbook="user-offboarding") == 1
    assert _sample(metrics, "msphub_runs_active") == 1
    assert _sample(metrics, "msphub_steps_overdue") == 16  # not the cancelled run's
    assert _sample(metrics, "msphub_database_up") == 1
    assert "# TYPE msphub_runs_completed_total counter" in metrics


def test_completed_runs_are_counted(make_api: Callable[..., Api], tmp_path: Path) -> None:
    """Completing the last step increments the completed counter once."""
    # Given a one-step playbook and a run of it
    playbooks = tmp_path / "one-step"
    playbooks.mkdir()
    (playbooks / "ping.yaml").write_text(
        "id: ping\ntitle: Ping\nversion: 1\nsteps:\n  - id: only\n    title: Only step\n")
    api = make_api(playbooks)
    run_id = api.launch("ping", "ACME", inputs={})["id"]
    # When its step is completed
    done = api.post(f"/api/runs/{run_id}/steps/only/complete", Role.TECHNICIAN, {})
    assert done.json()["status"] == "completed"
    # Then the counter says one completed run
    metrics = api.http.get("/metrics").text
    assert _sample(metrics, "msphub_runs_completed_total", playbook="ping") == 1
    assert _sample(metrics, "msphub_runs_active") == 0


def test_each_app_has_its_own_registry(make_api: Callable[..., Api]) -> None:
    """Two apps in one process do not share counters."""
    first = make_api()
    second = make_api()
    first.launch()
    assert _sample(first.http.get("/metrics").text, "msphub_runs_launched_total",
                   playbook="user-offboarding") == 1
    assert _sample(second.http.get("/metrics").text, "msphub_runs_launched_total",
                   playbook="user-offboarding") is None


def test_request_id_is_echoed_or_generated(api: Api) -> None:
    """A caller's X-Request-ID comes back; without one (or a weird one) a new one is made."""
    echoed = api.http.get("/healthz", headers={"X-Request-ID": "psa-hook-123"})
    assert echoed.headers["X-Request-ID"] == "psa-hook-123"
    made = api.http.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-ID"])
    weird = api.http.get("/healthz", headers={"X-Request-ID": "a b\tc" + "x" * 300})
    assert re.fullmatch(r"[0-9a-f]{32}", weird.headers["X-Request-ID"])
    errors = api.get("/api/runs/0")
    assert errors.headers["X-Request-ID"]


def test_access_log_has_method_path_status_duration_but_no_secrets(api: Api) -> None:
    """One access line per request with the request id; never the token or query string."""
    # Given a request carrying a token in both the header and the query string
    token = api.tokens[Role.VIEWER]
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        api.http.get("/api/runs", params={"client": "ACME", "token": token},
                     headers={**api.auth(Role.VIEWER), "X-Request-ID": "req-42"})
    # Then one access line names the request and leaks neither
    lines = [e for e in logs if e["event"] == "http_request"]
    assert len(lines) == 1
    line = lines[0]
    assert {k: line[k] for k in ("method", "path", "status", "request_id")} == {
        "method": "GET", "path": "/api/runs", "status": 200, "request_id": "req-42"}
    assert line["duration_ms"] >= 0
    assert token not in repr(logs)
    assert "ACME" not in repr(line)


def test_openapi_and_docs_load(api: Api) -> None:
    """/openapi.json describes the API; /docs serves the Swagger UI."""
    spec = api.http.get("/openapi.json")
    assert spec.status_code == 200
    doc = spec.json()
    assert doc["info"]["title"] == "msphub"
    assert doc["info"]["version"]
    for path in ("/api/runs", "/api/runs/{run_id}", "/api/runs/{run_id}/steps/{step_id}/complete",
                 "/api/runs/{run_id}/steps/{step_id}/skip", "/api/runs/{run_id}/audit",
                 "/api/audit/verify", "/api/playbooks", "/healthz", "/metrics"):
        assert path in doc["paths"], path
    assert "/" not in doc["paths"]  # the dashboard is not part of the API
    assert "HTTPBearer" in doc["components"]["securitySchemes"]
    docs = api.http.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def test_playbooks_list_and_detail(api: Api) -> None:
    """The library lists every shipped playbook; one playbook comes back in full."""
    listed = api.get("/api/playbooks")
    assert listed.status_code == 200
    by_id = {p["id"]: p for p in listed.json()}
    assert {"client-onboarding", "user-offboarding", "user-onboarding"} <= set(by_id)
    leaver = by_id["user-offboarding"]
    assert (leaver["title"], leaver["version"], leaver["category"]) == (
        "Leaver (user offboarding)", 3, "offboarding")
    assert leaver["strict_order"] is True
    assert leaver["description"]
    assert [i["id"] for i in leaver["inputs"]][:2] == ["leaver_name", "last_day"]
    first = leaver["steps"][0]
    assert first == {"id": "confirm-leaver",
                     "title": "Confirm the leaver request is genuine and identify the account",
                     "section": "Verify", "role": "service-desk", "assignee": None,
                     "after": [], "due": "4h after event", "conditional": False,
                     "skippable": False}
    full = api.get("/api/playbooks/user-offboarding").json()
    assert full["id"] == "user-offboarding"
    assert full["steps"][7]["when"] == {"has_company_device": True}
    assert full["steps"][0]["description"].startswith("Check the request")


def test_unexpected_errors_are_json_500_with_the_request_id(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug gives a JSON 500 quoting the request id, and is logged with it."""
    # Given a run service that fails unexpectedly
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(api.ctx.runs, "search", broken)
    http = TestClient(api.http.app, raise_server_exceptions=False)
    # When the list is asked for
    with capture_logs() as logs:
        response = http.get("/api/runs", headers={**api.auth(Role.VIEWER),
                                                  "X-Request-ID": "req-500"})
    # Then the caller gets a JSON 500 with the request id, and the log has it too
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert response.json()["request_id"] == "req-500"
    assert response.headers["X-Request-ID"] == "req-500"
    assert "boom" not in response.text
    assert any(e["event"] == "unhandled_error" and e["request_id"] == "req-500" for e in logs)
