"""The egress guard at connect time (the rules are crossdock.egress): every connection the
engine opens is checked against the address it is about to connect to, after DNS, so a name
that resolves or is re-bound to a private address cannot pass where its literal address
would not.

    aiohttp.TCPConnector(socket_factory=guarded_socket)     the aiohttp transport: aiohttp
                                                           hands each resolved address to the
                                                           factory before connecting to it
    httpcore.AsyncConnectionPool(network_backend=GuardedBackend())
                                                           httpx's own transport: the backend
                                                           resolves the name itself, checks
                                                           each address and connects to it

A refused address is an `EgressRefused` (an OSError, as a refused connection is): the
transports report it as a connection error naming the address and why, and the row is retried
like any connection error, so opting in later delivers what waited.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Iterable
from typing import Any

import httpcore

from crossdock.egress import OPT_IN, refusal


class EgressRefused(OSError):
    """The engine may not connect to this address (crossdock.egress). EACCES, as when a
    firewall refuses a connect(); its message is the `strerror` that aiohttp's connection
    error shows."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EACCES, message)

    def __str__(self) -> str:
        return str(self.strerror)


def check_address(address: str) -> None:
    """Raise EgressRefused unless the engine may connect to `address`."""
    why = refusal(address)
    if why is not None:
        raise EgressRefused(f"egress guard: {why}; set {OPT_IN}: true on the destination to "
                            "send there")


def guarded_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """aiohttp's `socket_factory`: a socket for `addr_info` (family, type, proto, canonname,
    sockaddr), refusing an address the engine may not connect to."""
    family, kind, proto, _, sockaddr = addr_info
    check_address(sockaddr[0])
    return socket.socket(family=family, type=kind, proto=proto)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network on asyncio, connecting only to addresses the guard allows. The name
    is resolved here and the connection made to the address, so what is checked is what is
    connected to; TLS still verifies the name (httpcore passes it as server_hostname)."""

    def __init__(self) -> None:
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                found = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host}: timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"resolving {host}: {exc}") from exc
        errors: list[str] = []
        for *_, sockaddr in found:
            address = str(sockaddr[0])
            try:
                check_address(address)
                return await self._network.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options)
            except (EgressRefused, httpcore.ConnectError) as exc:
                errors.append(str(exc))
        raise httpcore.ConnectError("; ".join(dict.fromkeys(errors)) or f"{host}: no address")

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("the engine connects over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


async def guarded_connect(host: str, port: int, allow_private: bool) -> socket.socket:
    """A TCP socket connected to `host`, to an address the guard allows unless
    `allow_private`: for senders whose library takes a connected socket (SFTP, FTP), so the
    address checked is the address connected to. Raises OSError (EgressRefused among them)
    naming every address tried."""
    loop = asyncio.get_running_loop()
    found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    errors: list[str] = []
    for family, kind, proto, _, sockaddr in found:
        sock = socket.socket(family, kind, proto)
        try:
            if not allow_private:
                check_address(str(sockaddr[0]))
            sock.setblocking(False)
            await loop.sock_connect(sock, sockaddr)
        except OSError as exc:
            sock.close()
            errors.append(f"{sockaddr[0]}: {exc}")
            continue
        return sock
    raise ConnectionError("; ".join(dict.fromkeys(errors)) or f"{host}: no address")
