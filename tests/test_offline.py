"""The tests' network guard (tests/offline.py): loopback works, every other destination fails the test."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Iterator

import offline
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def blocked_attempts() -> Iterator[None]:
    """Lets a test make blocked attempts on purpose: they are checked by the test, not failed by ``no_network``."""
    yield
    offline.attempts.clear()


@pytest.mark.parametrize("address", [("192.0.2.1", 80), ("2001:db8::1", 443)])  # documentation ranges
def test_connecting_to_another_machine_is_blocked(address, blocked_attempts) -> None:  # type: ignore[no-untyped-def]
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock, pytest.raises(offline.NetworkBlockedError):
        sock.connect(address)
    assert offline.attempts == [f"connecting to {address[0]}:{address[1]}"]


def test_looking_up_a_host_name_is_blocked(blocked_attempts) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(OSError, match="must not reach the network"):
        urllib.request.urlopen("https://github.com/", timeout=5)
    assert offline.attempts == ["looking up github.com:443"]


def test_loopback_is_allowed() -> None:
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        for host in ("127.0.0.1", "localhost"):
            if host == "localhost":
                thread = threading.Thread(target=server.handle_request, daemon=True)
                thread.start()
            with urllib.request.urlopen(f"http://{host}:{server.server_port}/", timeout=10) as response:
                assert response.read() == b"hello"
    finally:
        server.server_close()


def test_a_test_that_swallows_a_blocked_attempt_fails() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/network_probe.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "the test tried to reach the network: looking up github.com:443" in done.stdout
