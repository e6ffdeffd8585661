"""`msphub demo` (the README's run command) plays its scenario to the end."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_demo_scenario_completes_with_notes_on_the_ticket(tmp_path: Path) -> None:
    """The demo launches both runs from sandbox events and writes the notes back."""
    # Given a clean environment in the repository (as after `make run`)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSPHUB_")}
    env["COLUMNS"] = "200"
    # When the demo runs its scenario and exits
    proc = subprocess.run(
        [sys.executable, "-m", "hub.cli", "demo", "--port", str(free_port()), "--exit",
         "--data-dir", str(tmp_path / "demo")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False)
    # Then it exits cleanly, with both runs launched and the offboarding completed
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert "hub launched client onboarding" in out
    assert "hub launched user offboarding" in out
    assert "is refused: step 'disable-sign-in' is locked" in out
    offboarding = next(line for line in out.splitlines() if "user-offboarding" in line)
    assert "Acme Manufacturing" in offboarding and "completed" in offboarding
    assert "17/17" in offboarding
    assert "monthly-maintenance" not in out  # no recurring launches in the demo
    assert "status Completed, 19 notes, 1 document(s) attached" in out
    assert "COMPLETED" in out
    assert "Traceback" not in out + proc.stderr
    assert (tmp_path / "demo" / "msphub.db").exists()
