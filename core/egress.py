"""The egress guard's rules: which addresses the delivery engine may connect to.

A destination's URL comes from its settings (a webhook URL, Mailchimp's `base_url`, SessionM's
`host`, ...), and whoever writes those settings could point the daemon at the machine itself,
a private network or a cloud's metadata service (169.254.169.254, fd00:ec2::254,
100.100.100.200). So the engine connects only to public unicast addresses, unless the
destination opts in with `delivery.allow_private_network: true`. The transport applies
`refusal` to the address each connection is about to use, after DNS: a name that resolves, or
is re-bound, to a private address is refused like the literal address (crossdock.delivery.
transport). `url_problems` lets `crossdock validate` say so early for what can be judged
without DNS: literal addresses in any spelling, and this machine's own names.

    refusal("169.254.169.254")   "169.254.169.254 is link-local (169.254.0.0/16), where clouds
                                  serve instance metadata"
    refusal("::ffff:10.0.0.1")   "::ffff:a00:1 is the IPv4-mapped form of 10.0.0.1, which is
                                  private (10.0.0.0/8)"
    refusal("93.184.215.14")     None
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
OPT_IN = "delivery.allow_private_network"

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
#: (network, what it is, a note), first match wins; an address in none of them is public
IPV4_REFUSED: tuple[tuple[ipaddress.IPv4Network, str, str], ...] = (
    (_V4("0.0.0.0/8"), "unspecified", "'this network'"),
    (_V4("10.0.0.0/8"), "private", ""),
    (_V4("100.64.0.0/10"), "carrier-grade NAT shared space",
     "where Alibaba Cloud serves instance metadata at 100.100.100.200"),
    (_V4("127.0.0.0/8"), "loopback", ""),
    (_V4("169.254.0.0/16"), "link-local", "where clouds serve instance metadata"),
    (_V4("172.16.0.0/12"), "private", ""),
    (_V4("192.0.0.0/24"), "reserved for IETF protocol assignments", ""),
    (_V4("192.0.2.0/24"), "reserved for documentation", ""),
    (_V4("192.88.99.0/24"), "the deprecated 6to4 relay anycast", ""),
    (_V4("192.168.0.0/16"), "private", ""),
    (_V4("198.18.0.0/15"), "reserved for benchmarking", ""),
    (_V4("198.51.100.0/24"), "reserved for documentation", ""),
    (_V4("203.0.113.0/24"), "reserved for documentation", ""),
    (_V4("224.0.0.0/4"), "multicast", ""),
    (_V4("240.0.0.0/4"), "reserved", "255.255.255.255 being broadcast"),
)
#: IPv6 forms that carry an IPv4 address: judged by the IPv4 address they lead to
IPV6_CARRYING_IPV4: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::ffff:0:0/96"), "IPv4-mapped"),
    (_V6("64:ff9b::/96"), "NAT64"),
    (_V6("2002::/16"), "6to4"),
)
IPV6_REFUSED: tuple[tuple[ipaddress.IPv6Network, str, str], ...] = (
    (_V6("::/128"), "unspecified", ""),
    (_V6("::1/128"), "loopback", ""),
    (_V6("::/96"), "IPv4-compatible", "a deprecated form"),
    (_V6("64:ff9b:1::/48"), "NAT64 for local use", ""),
    (_V6("100::/64"), "discard-only", ""),
    (_V6("2001::/23"), "reserved for IETF protocol assignments", "Teredo among them"),
    (_V6("2001:db8::/32"), "reserved for documentation", ""),
    (_V6("3fff::/20"), "reserved for documentation", ""),
    (_V6("fc00::/7"), "unique local", "private, where AWS serves instance metadata at "
                                      "fd00:ec2::254"),
    (_V6("fe80::/10"), "link-local", ""),
    (_V6("fec0::/10"), "site-local", "a deprecated form"),
    (_V6("ff00::/8"), "multicast", ""),
)
#: where public IPv6 unicast addresses are allocated; anything outside is not public
IPV6_GLOBAL_UNICAST = _V6("2000::/3")

#: names that always mean this machine, whatever DNS says
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
# An IPv4 address in a legacy spelling the C resolver still accepts: 2852039166, 0xa9fea9fe,
# 0251.0376.0251.0376, 169.254.43518.
_LEGACY_IPV4 = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)(?:\.(?:0[xX][0-9a-fA-F]*|[0-9]+)){0,3}$")


def refusal(address: str | IPAddress) -> str | None:
    """Why the engine may not connect to `address` (an IP address, as a resolver returns
    it), or None when it is public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    what = _what(ip)
    return None if what is None else f"{ip} is {what}"


def _what(ip: IPAddress) -> str | None:
    if isinstance(ip, ipaddress.IPv4Address):
        return next((_described(net, what, note) for net, what, note in IPV4_REFUSED
                     if ip in net), None)
    for net, form in IPV6_CARRYING_IPV4:
        if ip in net:
            inner = _carried_ipv4(ip, net)
            what = _what(inner)
            return None if what is None else f"the {form} form of {inner}, which is {what}"
    for net, what, note in IPV6_REFUSED:
        if ip in net:
            return _described(net, what, note)
    if ip not in IPV6_GLOBAL_UNICAST:
        return f"reserved (outside the global unicast {IPV6_GLOBAL_UNICAST})"
    return None


def _described(net: ipaddress.IPv4Network | ipaddress.IPv6Network, what: str, note: str) -> str:
    return f"{what} ({net}), {note}" if note else f"{what} ({net})"


def _carried_ipv4(ip: ipaddress.IPv6Address, net: ipaddress.IPv6Network) -> ipaddress.IPv4Address:
    if net.prefixlen == 16:  # 6to4: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD
        return ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
    return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)


def host_refusal(host: str) -> str | None:
    """Why a URL's host, as written, can be refused before any DNS: a literal address in
    any spelling, or a name of this machine; None when only its resolved address can say."""
    name = host.strip("[]").rstrip(".").lower()
    if name in LOCAL_NAMES or name.endswith(".localhost"):
        return f"{host} is this machine (loopback)"
    try:
        ip: IPAddress = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        if not _LEGACY_IPV4.match(name):
            return None
        try:
            ip = ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return None
    why = refusal(ip)
    if why is None:
        return None
    return why if str(ip) == name else f"{host} is {ip}, which{why.removeprefix(str(ip))}"


def url_problems(settings: BaseModel, prefix: str) -> list[str]:
    """Every http(s) URL among a destination's settings whose host `host_refusal` refuses,
    as "path: why" (the config loader's warnings). Secret URLs (a Slack webhook's) are looked
    at too; only the host is named."""
    problems = []
    for path, text in _urls(settings, prefix):
        host = urlsplit(text).hostname
        why = host_refusal(host) if host else None
        if why is not None:
            problems.append(f"{path}: {why}; the engine refuses to connect there unless "
                            f"{OPT_IN}: true")
    return problems


def _urls(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, BaseModel):
        for name, item in value:
            yield from _urls(item, f"{path}.{name}")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _urls(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _urls(item, f"{path}.{index}")
    else:
        text = str(value).strip() if value is not None else ""
        if text.lower().startswith(("http://", "https://")):
            yield path, text
