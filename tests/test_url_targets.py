"""URLs reach only public addresses unless allowed, on the first connection and after every redirect.

Real HTTP servers on this machine: the *target* on 127.0.0.1, and a *public* stand-in on 127.0.0.2 (Linux answers on
all of 127.0.0.0/8), which the tests declare global so that its redirects can be followed to the target; every
other address goes through the real check.
"""

from __future__ import annotations

import http.server
import threading
from typing import Iterator, Optional, Tuple

import pytest

from deepbatch.errors import ImageReadError
from deepbatch.io import fetch
from deepbatch.io.images import PRIVATE_URLS_ENV, load_image, non_global_reason, set_image_limits

PUBLIC_STAND_IN = "127.0.0.2"
PHOTO = b""  # set by the fixture: a real JPEG


class _Server(http.server.BaseHTTPRequestHandler):
    target_port = 0

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        routes = {
            "/photo.jpg": None,
            "/to-loopback": f"http://127.0.0.1:{self.target_port}/photo.jpg",
            "/to-scheme-relative": f"//127.0.0.1:{self.target_port}/photo.jpg",
            "/to-localhost": f"http://localhost:{self.target_port}/photo.jpg",
            "/to-unspecified": f"http://0.0.0.0:{self.target_port}/photo.jpg",
            "/to-mapped": f"http://[::ffff:127.0.0.1]:{self.target_port}/photo.jpg",
        }
        if self.path not in routes:
            self.send_error(404)
            return
        if routes[self.path] is None:
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(PHOTO)))
            self.end_headers()
            self.wfile.write(PHOTO)
            return
        self.send_response(302)
        self.send_header("Location", routes[self.path])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _serve(host: str) -> Tuple[http.server.ThreadingHTTPServer, str]:
    server = http.server.ThreadingHTTPServer((host, 0), _Server)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"


@pytest.fixture(scope="module")
def servers(dataset_dir) -> Iterator[Tuple[str, str]]:  # type: ignore[no-untyped-def]
    """``(public stand-in URL, target URL)``."""
    global PHOTO
    PHOTO = (dataset_dir / "img1.jpg").read_bytes()
    target, target_url = _serve("127.0.0.1")
    _Server.target_port = target.server_address[1]
    public, public_url = _serve(PUBLIC_STAND_IN)
    yield public_url, target_url
    for server in (target, public):
        server.shutdown()
        server.server_close()


@pytest.fixture
def refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """No opt-in; the stand-in counts as a public host, every other address is checked for real."""
    monkeypatch.delenv(PRIVATE_URLS_ENV, raising=False)
    real = fetch.non_global_reason

    def reason(address: str) -> Optional[str]:
        return None if address == PUBLIC_STAND_IN else real(address)

    monkeypatch.setattr(fetch, "non_global_reason", reason)


def test_a_url_to_this_machine_is_refused(servers: Tuple[str, str], refused: None) -> None:
    url = f"{servers[1]}/photo.jpg"
    with pytest.raises(ImageReadError, match="refused to fetch URL: 127.0.0.1 is a loopback address") as info:
        load_image(url)
    assert url in str(info.value) and PRIVATE_URLS_ENV in str(info.value)


def test_a_public_url_is_fetched(servers: Tuple[str, str], refused: None) -> None:
    assert load_image(f"{servers[0]}/photo.jpg").ndim == 3


@pytest.mark.parametrize("route", ["to-loopback", "to-scheme-relative", "to-localhost", "to-unspecified",
                                   "to-mapped"])
def test_a_redirect_to_this_machine_is_refused(servers: Tuple[str, str], refused: None, route: str) -> None:
    url = f"{servers[0]}/{route}"
    with pytest.raises(ImageReadError, match=r"refused to fetch URL \(redirected to http://") as info:
        load_image(url, index=3)
    assert str(info.value).startswith(f"image 3 ({url})")


@pytest.mark.parametrize("how", ["env", "setting"])
def test_the_opt_in_allows_this_machine(servers: Tuple[str, str], refused: None, monkeypatch: pytest.MonkeyPatch,
                                        how: str) -> None:
    if how == "env":
        monkeypatch.setenv(PRIVATE_URLS_ENV, "1")
        assert load_image(f"{servers[0]}/to-loopback").ndim == 3
        return
    previous = set_image_limits(allow_private_urls=True)
    try:
        assert load_image(f"{servers[0]}/to-scheme-relative").ndim == 3
    finally:
        set_image_limits(allow_private_urls=previous.allow_private_urls)


@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("10.1.2.3", "private"), ("172.16.0.1", "private"),
    ("192.168.1.1", "private"), ("169.254.169.254", "link-local"), ("100.64.0.1", "non-global"),
    ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"), ("::1", "loopback"), ("::", "unspecified"),
    ("fe80::1", "link-local"), ("fc00::1", "private"), ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "loopback address inside an IPv6"), ("::ffff:10.0.0.1", "private address inside an IPv6"),
    ("2002:7f00:1::1", "loopback address inside an IPv6"),
    ("8.8.8.8", None), ("1.1.1.1", None), ("2606:4700:4700::1111", None), ("::ffff:8.8.8.8", None),
])
def test_which_addresses_are_not_global(address: str, reason: Optional[str]) -> None:
    found = non_global_reason(address)
    assert (found is None) if reason is None else (found is not None and reason in found)
