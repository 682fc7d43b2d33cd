"""Address helpers shared by the publishers and subscribers."""

from __future__ import annotations

import ipaddress
import socket

DEFAULT_HOST = "127.0.0.1"
DEFAULT_UDP_PORT = 9877
DEFAULT_WS_PORT = 8765


def is_loopback(host: str) -> bool:
    """Whether every address `host` resolves to is a loopback address ("" and "0.0.0.0" are not)."""
    if host in ("", "0.0.0.0", "::"):
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def check_host(host: str, allow_remote: bool, what: str) -> None:
    """Refuse a non-loopback address unless the caller opted in with allow_remote=True."""
    if not allow_remote and not is_loopback(host):
        raise ValueError(
            f"{what}: {host!r} is not a loopback address; hand poses would leave this machine. "
            "Pass allow_remote=True to do so on purpose.")


def resolve_udp(host: str, port: int) -> tuple[int, tuple]:
    """(address family, sockaddr) of a UDP destination, IPv4 preferred."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr
