"""Which requests may go on the wire: pure rules, no Scrapy, so they are unit-tested on their own.

Each check returns None (allowed) or a `Refusal` naming the reason (the stats key `fcmon/refused/<reason>`)
and, in words, why.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Callable, Iterable
from urllib.parse import urlsplit

import regex

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str], list[str]]

SAFE_METHODS = frozenset({"GET", "HEAD"})
CREDENTIAL_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization"})
SCHEMES = frozenset({"http", "https"})


@dataclass(frozen=True)
class Refusal:
    reason: str
    detail: str


def resolve(host: str) -> list[str]:
    """Every address `host` resolves to (IPv4 and IPv6)."""
    return sorted({info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)})


def parse_ip(text: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_public(ip: IPAddress) -> bool:
    """False for private, loopback, link-local, reserved, multicast, unspecified and other non-global addresses."""
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast
                or ip.is_unspecified or not ip.is_global)


class AddressPolicy:
    """Refuses hosts that are or resolve to a non-public address, unless the allow list covers them.

    Allow-list entries are host names, IP addresses or CIDR networks. A host name entry allows that host
    whatever it resolves to; otherwise every non-public address of the host must lie in an allowed
    address or network. Resolutions are cached per host for the life of the policy (one crawl).
    """

    def __init__(self, allow: Iterable[str] = (), resolver: Resolver = resolve):
        self.allow_names: set[str] = set()
        self.allow_networks: list[IPNetwork] = []
        for entry in (e.strip().lower() for e in allow):
            if not entry:
                continue
            try:
                self.allow_networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                self.allow_names.add(entry.rstrip("."))
        self.resolver = resolver
        self._cache: dict[str, Refusal | None] = {}

    def check_host(self, host: str) -> Refusal | None:
        host = host.lower().rstrip(".")
        if host not in self._cache:
            self._cache[host] = self._check(host)
        return self._cache[host]

    def _allowed(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.allow_networks)

    def permits(self, host: str, ip: IPAddress) -> bool:
        """Whether a connection to `host` may go to address `ip` (the resolver's check of each answer)."""
        return host.lower().rstrip(".") in self.allow_names or is_public(ip) or self._allowed(ip)

    def _check(self, host: str) -> Refusal | None:
        if not host:
            return Refusal("private_address", "the URL has no host")
        if host in self.allow_names:
            return None
        literal = parse_ip(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = [ip for ip in (parse_ip(a) for a in self.resolver(host)) if ip is not None]
            except (OSError, UnicodeError) as exc:
                return Refusal("unresolvable", f"host {host} does not resolve ({exc})")
            if not addresses:
                return Refusal("unresolvable", f"host {host} has no address")
        blocked = [str(ip) for ip in addresses if not is_public(ip) and not self._allowed(ip)]
        if blocked:
            return Refusal("private_address", f"host {host} is or resolves to non-public {', '.join(blocked)} "
                                              "(add it to FCMON_CRAWL_ALLOW_HOSTS only for a site you run)")
        return None


class RequestPolicy:
    """Everything a request must satisfy to be sent: GET/HEAD, http(s), no credentials, no login URL, a public host."""

    def __init__(self, login_url_pattern: str, addresses: AddressPolicy):
        self.login_url = regex.compile(login_url_pattern)
        self.addresses = addresses

    def check(self, method: str, url: str, header_names: Iterable[str]) -> Refusal | None:
        if method.upper() not in SAFE_METHODS:
            return Refusal("method", f"{method} is not GET or HEAD: fcmon reads and never interacts")
        parts = urlsplit(url)
        if parts.scheme.lower() not in SCHEMES:
            return Refusal("scheme", f"scheme {parts.scheme or '(none)'} is not http or https")
        sent = sorted({name for name in header_names if name.lower() in CREDENTIAL_HEADERS})
        if parts.username is not None or parts.password is not None:
            sent.append("user:password in the URL")
        if sent:
            return Refusal("credentials", f"the request carries {', '.join(sent)}: fcmon sends no credentials or session")
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        if self.login_url.search(target):
            return Refusal("login_url", f"{target} looks like a login or sign-up page (crawl_login_url_pattern)")
        return self.addresses.check_host(parts.hostname or "")

    def is_login_url(self, url: str) -> bool:
        parts = urlsplit(url)
        return bool(self.login_url.search(parts.path + (f"?{parts.query}" if parts.query else "")))
