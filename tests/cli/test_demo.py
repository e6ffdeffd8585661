"""`msphub demo` (the README's run command) plays its scenario to the end on every PSA
sandbox, with the Datto RMM sandbox proving two onboarding steps."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMPLETED = {"connectwise": "Completed", "autotask": "Complete", "halopsa": "Completed"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
@pytest.mark.parametrize("psa", ["connectwise", "autotask", "halopsa"])
def test_demo_scenario_completes_on_each_psa(tmp_path: Path, psa: str) -> None:
    """The demo launches both runs from sandbox events, writes the notes back, and the RMM
    check and backup alert tick onboarding's agent and backup steps."""
    # Given a clean environment in the repository (as after `make run`)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSPHUB_")}
    env["COLUMNS"] = "200"
    # When the demo runs its scenario on this PSA and exits
    proc = subprocess.run(
        [sys.executable, "-m", "hub.cli", "demo", "--psa", psa, "--port", str(free_port()),
         "--exit", "--data-dir", str(tmp_path / "demo")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False)
    # Then it exits cleanly, with both runs launched and the offboarding completed
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert "hub launched client onboarding" in out
    assert "hub launched user offboarding" in out
    assert "is refused: step 'disable-sign-in' is locked" in out
    offboarding = next(line for line in out.splitlines() if "user-offboarding" in line)
    assert "Acme Manufacturing" in offboarding and "completed" in offboarding
    steps = re.search(r"(\d+)/(\d+)", offboarding)
    assert steps is not None and steps[1] == steps[2]
    assert "monthly-maintenance" not in out  # no recurring launches in the demo
    # and every step's note, the launch note and the completion record are on the ticket
    notes = int(steps[1]) + 2
    assert f"status {COMPLETED[psa]}, {notes} notes, 1 document(s) attached" in out
    assert "COMPLETED" in out
    # and the RMM check first names the offline laptop, then ticks the agent step
    assert "still missing: agents_online: ACME-LT03: agent offline" in out
    assert re.search(r"✓ Deploy the RMM agent on all endpoints\s+check:agents_online", out)
    assert "agents_online: 3/3 devices — ACME-FS01 (online), ACME-LT03 (online)" in out
    # and the resolved backup alert ticks "Verify backups"
    assert re.search(r"✓ Verify backups are completing successfully\s+"
                     r"rule:backup-alert-verifies-backups", out)
    assert "Backup job 'Nightly image' completed successfully" in out
    assert "Traceback" not in out + proc.stderr
    assert (tmp_path / "demo" / "msphub.db").exists()
