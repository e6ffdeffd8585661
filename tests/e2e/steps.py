"""Working a run through the REST API in the end-to-end tests, as people would: each open
step completed by the technician's token with its evidence form filled in, each sign-off
approved by a second person (the ``max`` token: team member max, a service manager)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.harness import Hub

APPROVER = "max"  # config/team.yaml: a service manager besides alice


def approver_token(hub: Hub) -> str:
    """A token named after the second service manager (four-eyes: not the worker)."""
    out = hub.cli("tokens", "create", "--role", "manager", "--name", APPROVER)
    return out.strip().splitlines()[-1].strip()


def sample_value(field: dict[str, Any]) -> Any:
    """A plausible value for one evidence field of the API's ``evidence_fields``."""
    kind = field["type"]
    if kind == "number":
        low, high = field.get("min"), field.get("max")
        value = 97.0
        if high is not None:
            value = min(value, high)
        if low is not None:
            value = max(value, low)
        return value
    return {"date": "2025-03-03", "boolean": True, "confirm": True,
            "url": "https://evidence.example/report/1", "file": "evidence.pdf",
            "choice": (field.get("choices") or ["-"])[0]}.get(kind, "e2e value")


def finish_step(worker: httpx.Client, approver: httpx.Client, run_id: int,
                step: dict[str, Any], evidence: str) -> None:
    """Complete (with its evidence form) or, for a sign-off, approve one open step; the
    evidence text is the approval's comment, so notes and the record carry it either way."""
    step_id = step["step_id"]
    if step.get("approval"):
        approver.post(f"/api/runs/{run_id}/steps/{step_id}/approve",
                      json={"comment": evidence}).raise_for_status()
        return
    fields = {f["id"]: sample_value(f) for f in step.get("evidence_fields") or []}
    worker.post(f"/api/runs/{run_id}/steps/{step_id}/complete",
                json={"evidence": evidence, "fields": fields}).raise_for_status()
