"""Waiting on a command-line run started in a child process, so a test can stop it mid-run."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest


def wait_for_rows(path: Path, process: subprocess.Popen, timeout: float = 120.0) -> None:
    """Return once ``path`` holds a whole row; fail the test if ``process`` ends first or nothing comes in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= 1:
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended before it was stopped: {process.stderr.read() if process.stderr else ''}")
        time.sleep(0.02)
    pytest.fail("no row was written in time")
