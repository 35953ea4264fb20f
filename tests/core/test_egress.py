"""The egress guard: which addresses the engine may connect to (crossdock.egress), the check
at connect time on both transports (crossdock.delivery.guard), the one opt-in per destination,
and what `crossdock validate` says early. Connections are real, to a server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from crossdock.delivery import deliver_once
from crossdock.delivery.guard import guarded_socket
from crossdock.delivery.transport import AiohttpTransport, make_client, send
from crossdock.egress import host_refusal, refusal
from crossdock.loader import parse_config
from crossdock.outbox.base import NewRow
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.testing.fakeserver import RunningServer, serve

#: (address, what the refusal says after "<address> is"); every form the guard must refuse
REFUSED = [
    ("127.0.0.1", "loopback (127.0.0.0/8)"),
    ("127.45.6.7", "loopback (127.0.0.0/8)"),
    ("::1", "loopback (::1/128)"),
    ("10.1.2.3", "private (10.0.0.0/8)"),
    ("172.31.255.255", "private (172.16.0.0/12)"),
    ("192.168.0.9", "private (192.168.0.0/16)"),
    ("169.254.169.254", "link-local (169.254.0.0/16), where clouds serve instance metadata"),
    ("100.64.0.1", "carrier-grade NAT shared space (100.64.0.0/10), where Alibaba Cloud "
                   "serves instance metadata at 100.100.100.200"),
    ("100.100.100.200", "carrier-grade NAT shared space (100.64.0.0/10), where Alibaba "
                        "Cloud serves instance metadata at 100.100.100.200"),
    ("0.0.0.0", "unspecified (0.0.0.0/8), 'this network'"),
    ("::", "unspecified (::/128)"),
    ("224.0.0.251", "multicast (224.0.0.0/4)"),
    ("ff02::1", "multicast (ff00::/8)"),
    ("240.0.0.1", "reserved (240.0.0.0/4), 255.255.255.255 being broadcast"),
    ("255.255.255.255", "reserved (240.0.0.0/4), 255.255.255.255 being broadcast"),
    ("192.0.2.10", "reserved for documentation (192.0.2.0/24)"),
    ("198.18.0.1", "reserved for benchmarking (198.18.0.0/15)"),
    ("fd00:ec2::254", "unique local (fc00::/7), private, where AWS serves instance metadata "
                      "at fd00:ec2::254"),
    ("fc00::1", "unique local (fc00::/7), private, where AWS serves instance metadata at "
                "fd00:ec2::254"),
    ("fe80::1%lo", "link-local (fe80::/10)"),
    ("fec0::1", "site-local (fec0::/10), a deprecated form"),
    ("2001:db8::1", "reserved for documentation (2001:db8::/32)"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved for IETF protocol assignments "
                                             "(2001::/23), Teredo among them"),
    ("64:ff9b:1::a", "NAT64 for local use (64:ff9b:1::/48)"),
    ("100::1", "discard-only (100::/64)"),
    ("4000::1", "reserved (outside the global unicast 2000::/3)"),
    # IPv6 forms carrying an IPv4 address are judged by it
    ("::ffff:127.0.0.1", "the IPv4-mapped form of 127.0.0.1, which is loopback (127.0.0.0/8)"),
    ("::ffff:169.254.169.254", "the IPv4-mapped form of 169.254.169.254, which is link-local "
                               "(169.254.0.0/16), where clouds serve instance metadata"),
    ("64:ff9b::a9fe:a9fe", "the NAT64 form of 169.254.169.254, which is link-local "
                           "(169.254.0.0/16), where clouds serve instance metadata"),
    ("64:ff9b::10.0.0.1", "the NAT64 form of 10.0.0.1, which is private (10.0.0.0/8)"),
    ("2002:a9fe:a9fe::1", "the 6to4 form of 169.254.169.254, which is link-local "
                          "(169.254.0.0/16), where clouds serve instance metadata"),
    ("2002:7f00:1::", "the 6to4 form of 127.0.0.1, which is loopback (127.0.0.0/8)"),
    ("::127.0.0.1", "IPv4-compatible (::/96), a deprecated form"),
    ("::8.8.8.8", "IPv4-compatible (::/96), a deprecated form"),
]
PUBLIC = ["93.184.215.14", "8.8.8.8", "1.1.1.1", "100.128.0.1", "2606:4700:4700::1111",
          "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "2a00:1450:4001:81c::200e"]


@pytest.mark.parametrize(("address", "what"), REFUSED)
def test_every_non_public_form_is_refused_and_says_why(address: str, what: str) -> None:
    why = refusal(address)
    assert why is not None and why.split(" is ", 1)[1] == what


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert refusal(address) is None


@pytest.mark.parametrize(("host", "says"), [
    # 169.254.169.254 in its spellings: decimal, hex, octal, short forms
    ("2852039166", "2852039166 is 169.254.169.254, which is link-local"),
    ("0xa9fea9fe", "0xa9fea9fe is 169.254.169.254, which is link-local"),
    ("0251.0376.0251.0376", "0251.0376.0251.0376 is 169.254.169.254, which is link-local"),
    ("0251.254.169.254", "0251.254.169.254 is 169.254.169.254, which is link-local"),
    ("169.254.43518", "169.254.43518 is 169.254.169.254, which is link-local"),
    ("127.1", "127.1 is 127.0.0.1, which is loopback"),
    ("0", "0 is 0.0.0.0, which is unspecified"),
    ("[::1]", "::1 is loopback"),
    ("[fd00:ec2::254]", "fd00:ec2::254 is unique local"),
    ("localhost", "localhost is this machine (loopback)"),
    ("LOCALHOST.", "LOCALHOST. is this machine (loopback)"),
    ("api.localhost", "api.localhost is this machine (loopback)"),
])
def test_a_literal_host_is_judged_before_any_dns(host: str, says: str) -> None:
    why = host_refusal(host)
    assert why is not None and why.startswith(says)


@pytest.mark.parametrize("host", ["example.com", "1.1.1.1", "hooks.slack.com", "10.example",
                                  "0x.example", "[2606:4700:4700::1111]"])
def test_names_and_public_literals_are_left_to_connect_time(host: str) -> None:
    assert host_refusal(host) is None


# -- what validate says -------------------------------------------------------------------------

WARNING = "the engine refuses to connect there unless delivery.allow_private_network: true"


def loaded(tmp_path: Path, destination: dict[str, Any]) -> Any:
    return parse_config({"outbox": {"url": "sqlite:///o.db"}, "collector": {"enabled": False},
                         "destinations": {"d": destination}}, base_dir=tmp_path, env={})


@pytest.mark.parametrize(("destination", "path", "host_says"), [
    ({"plugin": "webhook", "settings": {"url": "http://169.254.169.254/latest/meta-data"}},
     "settings.url", "169.254.169.254 is link-local"),
    ({"plugin": "webhook", "settings": {"url": "http://[::ffff:127.0.0.1]:8080/"}},
     "settings.url", "::ffff:7f00:1 is the IPv4-mapped form of 127.0.0.1"),
    ({"plugin": "mailchimp", "settings": {"api_key": "k-us1", "list_id": "l",
                                          "base_url": "http://2852039166/3.0"}},
     "settings.base_url", "169.254.169.254 is link-local"),
    ({"plugin": "sessionm", "settings": {"host": "http://[fd00:ec2::254]", "api_key": "a",
                                         "api_secret": "s"}},
     "settings.host", "fd00:ec2::254 is unique local"),
    ({"plugin": "facebook_audience", "settings": {"audience_id": "1", "access_token": "t",
                                                  "graph_url": "http://100.100.100.200/"}},
     "settings.graph_url", "100.100.100.200 is carrier-grade NAT"),
    ({"plugin": "slack", "settings": {"webhook_url": "http://localhost:9/services/T/B/secret",
                                      "allow_any_host": True}},
     "settings.webhook_url", "localhost is this machine"),
])
def test_validate_warns_early_about_a_literal_private_host(
    tmp_path: Path, destination: dict[str, Any], path: str, host_says: str,
) -> None:
    # mailchimp base_url, sessionm host, facebook graph_url and Slack's URL had no check at
    # all; the webhook's missed 100.64.0.0/10 and the 6to4/NAT64 forms.
    (warning,) = [w for w in loaded(tmp_path, destination).warnings if w.endswith(WARNING)]
    assert warning.startswith(f"destinations.d.{path}: {host_says}")
    assert warning.endswith(WARNING)
    assert "secret" not in warning  # a Slack URL is a credential: only its host is named
    opted_in = loaded(tmp_path, {**destination, "delivery": {"allow_private_network": True}})
    assert not [w for w in opted_in.warnings if w.endswith(WARNING)]
    assert opted_in.destination("d").config.delivery.allow_private_network


def test_the_webhooks_old_opt_in_is_read_as_the_engines_with_a_warning(tmp_path: Path) -> None:
    old = loaded(tmp_path, {"plugin": "webhook", "settings": {
        "url": "http://127.0.0.1:9/in", "allow_private_network": True}})
    assert old.warnings == [
        "destinations.d.settings.allow_private_network: moved to "
        "delivery.allow_private_network (the engine's egress guard, for every destination); "
        "read as that for now, move it there"]
    assert old.destination("d").config.delivery.allow_private_network
    # The delivery setting, when given too, is the one that counts.
    both = loaded(tmp_path, {"plugin": "webhook", "delivery": {"allow_private_network": False},
                             "settings": {"url": "http://127.0.0.1:9/in",
                                          "allow_private_network": True}})
    assert not both.destination("d").config.delivery.allow_private_network


# -- at connect time, for real ------------------------------------------------------------------


class Receiver:
    """A server on 127.0.0.1 that counts the requests that reach it."""

    def __init__(self) -> None:
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.Response(text="ok")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, RunningServer]]:
    fake = Receiver()
    with serve(fake.app()) as server:
        yield fake, server


def port_of(server: RunningServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


@pytest.mark.parametrize("fast", [True, False], ids=["aiohttp", "httpcore"])
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "2130706433", "127.1"])
async def test_a_connection_to_loopback_is_refused_without_the_opt_in(
    receiver: tuple[Receiver, RunningServer], fast: bool, host: str,
) -> None:
    # `localhost` is a name that resolves to loopback: what is refused is the address it
    # resolves to, at connect time; 2130706433 and 127.1 are 127.0.0.1 spelled otherwise.
    fake, server = receiver
    url = f"http://{host}:{port_of(server)}/hook"
    async with make_client(fast=fast) as client:
        with pytest.raises(httpx.TransportError) as refused:
            await send(client, httpx.Request("POST", url, content=b"{}"))
    assert fake.requests == 0
    if host in ("127.0.0.1", "localhost") or not fast:
        # (aiohttp refuses the other spellings itself, before connecting: not canonical)
        cause = f"{refused.value} {refused.value.__cause__}"
        assert "egress guard: 127.0.0.1 is loopback (127.0.0.0/8)" in cause
    async with make_client(fast=fast, allow_private_network=True) as client:
        response = await send(client, httpx.Request("POST", server.url + "/hook", content=b"{}"))
    assert response.status_code == 200 and fake.requests == 1


class ReboundDNS(AbstractResolver):
    """DNS under an attacker's control: whatever it answered before (when the URL was
    configured, say), it now answers loopback."""

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": 0}]

    async def close(self) -> None:
        return None


async def test_a_name_rebound_to_loopback_is_refused_at_connect_time(
    receiver: tuple[Receiver, RunningServer],
) -> None:
    # A name passes validate (only its resolved address can say), so the guard must look at
    # what it resolves to when connecting. The transport's session, with this DNS.
    fake, server = receiver
    transport = AiohttpTransport(limits=httpx.Limits(), allow_private_network=False,
                                 max_response_bytes=1 << 20)
    transport.client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(
        resolver=ReboundDNS(), socket_factory=guarded_socket))
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.TransportError) as refused:
            await send(client, httpx.Request(
                "POST", f"http://rebound.example:{port_of(server)}/hook", content=b"{}"))
    assert "egress guard: 127.0.0.1 is loopback" in str(refused.value.__cause__)
    assert fake.requests == 0


async def test_httpcore_checks_every_address_the_name_resolves_to(
    receiver: tuple[Receiver, RunningServer], monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, server = receiver
    port = port_of(server)

    async def resolve(host: str, port: int, **kwargs: Any) -> list[Any]:
        assert host == "internal.example"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolve)
    async with make_client(fast=False) as client:
        with pytest.raises(httpx.ConnectError) as refused:
            await send(client, httpx.Request("POST", f"http://internal.example:{port}/h"))
    assert str(refused.value) == (
        "egress guard: 169.254.169.254 is link-local (169.254.0.0/16), where clouds serve "
        "instance metadata; set delivery.allow_private_network: true on the destination to "
        "send there; egress guard: 127.0.0.1 is loopback (127.0.0.0/8); set "
        "delivery.allow_private_network: true on the destination to send there")
    assert fake.requests == 0


async def test_the_engine_refuses_a_destination_that_did_not_opt_in_and_delivers_when_it_does(
    tmp_path: Path, receiver: tuple[Receiver, RunningServer],
) -> None:
    # Every destination's requests go through the guard: two destinations on the same
    # receiver, one opted in; the other's rows wait (retried), and nothing reached the
    # receiver for it.
    fake, server = receiver
    raw = {"outbox": {"url": "sqlite:///o.db"}, "collector": {"enabled": False},
           "destinations": {
               "open": {"plugin": "webhook", "settings": {"url": f"{server.url}/open"},
                        "delivery": {"allow_private_network": True}},
               "guarded": {"plugin": "webhook", "settings": {"url": f"{server.url}/g"}}}}
    config = parse_config(raw, base_dir=tmp_path, env={})
    outbox = SQLiteOutbox(tmp_path / "o.db")
    try:
        payload = {"type": "track", "messageId": "m1", "userId": "u", "event": "E"}
        outbox.enqueue([NewRow("open", "m1", payload), NewRow("guarded", "m1", payload)])
        report = await deliver_once(config, outbox)
        guarded = report.destinations["guarded"]
        assert (report.destinations["open"].delivered, guarded.retried) == (1, 1)
        assert guarded.last_error is not None
        assert "egress guard: 127.0.0.1 is loopback" in guarded.last_error
        assert fake.requests == 1
    finally:
        outbox.close()
