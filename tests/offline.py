"""The tests' network guard: nothing but this machine may be reached.

:func:`install` patches ``socket`` so that resolving a host name that is not the machine's own and connecting a
stream socket to an address that is not loopback raise :class:`NetworkBlockedError` (an ``OSError``, so code that
handles being offline takes its offline path). Every blocked attempt is also recorded, and the ``no_network``
fixture of ``conftest.py`` fails the test that made one, even when the code under test swallowed the error.
Datagram sockets may ``connect`` (that sends nothing: Ray finds its own address that way).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, List

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", ""}
attempts: List[str] = []  # blocked destinations, in order; the fixture reads and clears it
_installed: List[bool] = []


class NetworkBlockedError(ConnectionRefusedError):
    """A test tried to reach a machine other than this one."""


def is_local(host: Any) -> bool:
    """Whether ``host`` (a name or an address) is this machine: loopback addresses and names, and its own name."""
    if host is None:
        return True
    text = host.decode() if isinstance(host, bytes) else str(host)
    text = text.strip("[]").split("%", 1)[0]
    if text.lower() in LOOPBACK_NAMES or text in (socket.gethostname(), socket.getfqdn()):
        return True
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is IPv4's loopback
    return (mapped or address).is_loopback or address.is_unspecified


def _block(what: str) -> None:
    attempts.append(what)
    raise NetworkBlockedError(f"the tests must not reach the network: {what} was blocked (only loopback is allowed)")


def install() -> None:
    """Patch ``socket`` for this process (once)."""
    if _installed:
        return
    _installed.append(True)
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_local(host):
            _block(f"looking up {host}:{port}")
        return real_getaddrinfo(host, port, *args, **kwargs)

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
            if isinstance(address, tuple) and not is_local(address[0]):
                _block(f"connecting to {address[0]}:{address[1]}")

    def connect(self: socket.socket, address: Any) -> None:
        check(self, address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address)
        return real_connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
