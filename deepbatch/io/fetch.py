"""Fetching an image URL: one deadline for the whole fetch, redirects to http(s) only, and connections only to
global addresses unless private ones are allowed."""

from __future__ import annotations

import functools
import http.client
import ipaddress
import os
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, List, Optional, Tuple

from ..errors import ImageError, ImageReadError
from .files import read_bounded
from .inputs import describe
from .limits import ImageLimits, too_many_bytes

URL_TIMEOUT_S = 20.0  # the longest wait for any one network operation of a URL fetch


class _WebRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) only (urllib also follows ``ftp://``)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, f"redirect to a {scheme or 'relative'} URL refused", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Deadline:
    """Closes every connection of one URL fetch when its time is up, so that no wait (connecting, headers or body,
    however slowly a server trickles bytes) outlasts the fetch's total deadline."""

    def __init__(self, seconds: float):
        self.expired = False
        self._sockets: List[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                sock.shutdown(socket.SHUT_RDWR)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv at once
                except OSError:
                    pass

    def opener(self, guard: Optional[Callable[[str, Tuple[str, int], Any], socket.socket]] = None,
               ) -> urllib.request.OpenerDirector:
        """A urllib opener whose connections this deadline watches, following http(s) redirects only; ``guard``
        (``guard(url, (host, port), timeout) -> socket``) opens every connection, the redirects' included."""
        deadline = self

        def connector(url: str) -> Any:
            if guard is None:
                return socket.create_connection
            return lambda address, timeout=None, source_address=None: guard(url, address, timeout)

        class Watched:
            """Mixed into http.client's connections: opened through ``guard``, its socket under the deadline."""

            sock: Any

            def __init__(self, *args: Any, url: str = "", **kwargs: Any):
                super().__init__(*args, **kwargs)  # type: ignore[call-arg]
                self._create_connection = connector(url)

            def connect(self) -> None:
                super().connect()  # type: ignore[misc]
                deadline.watch(self.sock)

        class Connection(Watched, http.client.HTTPConnection):
            pass

        class SecureConnection(Watched, http.client.HTTPSConnection):
            pass

        class Handler(urllib.request.HTTPHandler):
            def http_open(self, req: Any) -> Any:
                return self.do_open(functools.partial(Connection, url=req.full_url), req)

        class SecureHandler(urllib.request.HTTPSHandler):
            def https_open(self, req: Any) -> Any:
                return self.do_open(functools.partial(SecureConnection, url=req.full_url), req,
                                    context=getattr(self, "_context", None))

        return urllib.request.build_opener(Handler, SecureHandler, _WebRedirects)


PRIVATE_URLS_ENV = "DEEPBATCH_ALLOW_PRIVATE_URLS"


def private_urls_allowed(limits: ImageLimits) -> bool:
    """Whether URLs may reach non-global addresses: ``limits.allow_private_urls`` or
    ``$DEEPBATCH_ALLOW_PRIVATE_URLS=1``."""
    return limits.allow_private_urls or os.environ.get(PRIVATE_URLS_ENV, "").strip() == "1"


def non_global_reason(address: str) -> Optional[str]:
    """Why ``address`` (an IP address as text) is not a public internet address, or None when it is one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            inner = non_global_reason(str(embedded))
            return f"{inner} inside an IPv6 address" if inner else None
    for name, flag in (("a loopback", ip.is_loopback), ("a link-local", ip.is_link_local),
                       ("an unspecified", ip.is_unspecified), ("a multicast", ip.is_multicast),
                       ("a reserved", ip.is_reserved), ("a private", ip.is_private)):
        if flag:
            return f"{name} address"
    return None if ip.is_global else "a non-global address"


def _url_guard(index: Optional[int], source: Optional[str]) -> Callable[[str, Tuple[str, int], Any], socket.socket]:
    """Opens a connection for a URL fetch only to global addresses (see :func:`non_global_reason`), connecting to the
    address it checked; a refusal is an :class:`ImageReadError` naming the URL and the hop that was refused."""

    def connect(url: str, address: Tuple[str, int], timeout: Any) -> socket.socket:
        host, port = address
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise OSError(f"cannot resolve {host!r}: {exc.strerror}") from exc
        hop = "" if describe(url) == source else f" (redirected to {describe(url)})"
        for *_, sockaddr in infos:
            reason = non_global_reason(str(sockaddr[0]))
            if reason is not None:
                raise ImageReadError(
                    f"refused to fetch URL{hop}: {host} is {reason} ({sockaddr[0]}), and URLs may reach only public "
                    f"addresses; allow them with set_image_limits(allow_private_urls=True) or "
                    f"{PRIVATE_URLS_ENV}=1 if this is intended", index, source)
        last: Optional[OSError] = None
        for family, kind, proto, _, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            try:
                if timeout is not None and timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
                    sock.settimeout(timeout)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                last = exc
        raise last or OSError(f"cannot connect to {host}")

    return connect


def read_url(url: str, index: Optional[int], limits: ImageLimits) -> bytes:
    source = describe(url)
    late = f"the download took longer than {limits.url_deadline_s:g} s"
    guard = None if private_urls_allowed(limits) else _url_guard(index, source)
    try:
        with _Deadline(limits.url_deadline_s) as deadline:
            try:
                with deadline.opener(guard).open(url, timeout=min(URL_TIMEOUT_S,
                                                                  limits.url_deadline_s)) as response:
                    length = response.headers.get("Content-Length")
                    if length is not None and length.isdigit() and int(length) > limits.max_bytes:
                        raise ImageReadError("the server announces " + too_many_bytes(int(length), limits), index,
                                             source)
                    data = read_bounded(response.read1, index, source, limits)
            except ImageError:
                raise
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
                if deadline.expired:
                    raise ImageReadError(late, index, source) from exc
                raise
            if deadline.expired:  # the connection was cut: what arrived is incomplete
                raise ImageReadError(late, index, source)
            return data
    except ImageError:
        raise
    except urllib.error.HTTPError as exc:
        raise ImageReadError(f"could not fetch URL (HTTP {exc.code} {exc.reason})", index, source) from exc
    except TimeoutError as exc:
        raise ImageReadError(f"the server did not answer within {min(URL_TIMEOUT_S, limits.url_deadline_s):g} s",
                             index, source) from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ImageReadError(f"could not fetch URL ({reason}); check the address and the network", index,
                             source) from exc
