"""The access log never shows a webhook secret carried in the URL path."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from hub.api.middleware import loggable_path
from tests.api.conftest import Api


def test_a_webhook_path_secret_is_not_in_the_access_log(api: Api) -> None:
    """ConnectWise finding: POST /webhooks/<source>/<secret> used to log the secret."""
    with capture_logs() as logs:
        response = api.http.post("/webhooks/cw-prod/s3cret-path-token-0123456789",
                                 content=b"{}")

    [line] = [e for e in logs if e["event"] == "http_request"]
    assert response.status_code == 404
    assert line["path"] == "/webhooks/cw-prod/***" and line["status"] == 404
    assert "s3cret-path-token" not in repr(logs)


@pytest.mark.parametrize(("path", "shown"), [
    ("/webhooks/cw-prod", "/webhooks/cw-prod"),
    ("/webhooks/cw-prod/abc", "/webhooks/cw-prod/***"),
    ("/webhooks/cw-prod/abc/def", "/webhooks/cw-prod/***"),
    ("/api/runs/12", "/api/runs/12"),
])
def test_loggable_path(path: str, shown: str) -> None:
    """Only what follows a webhook's source segment is hidden."""
    assert loggable_path(path) == shown
