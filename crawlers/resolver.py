"""The crawl's DNS resolver: the addresses a connection goes to are checked, not only the ones a middleware saw.

PublicOnlyMiddleware checks a request's host before it is sent, but the HTTP client resolves the name again
when it connects, and a hostile DNS server can answer the first lookup with a public address and the second
with 127.0.0.1 or 169.254.169.254 (DNS rebinding). This resolver is the one every connection uses (Scrapy's
TWISTED_DNS_RESOLVER): it passes on only the addresses the AddressPolicy permits, so whatever DNS answers,
the crawler connects to no non-public address outside FCMON_CRAWL_ALLOW_HOSTS.
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

from twisted.internet.interfaces import IAddress, IHostnameResolver, IHostResolution, IResolutionReceiver
from zope.interface import implementer, provider

from crawlers.middlewares import crawl_policy
from crawlers.netpolicy import AddressPolicy, parse_ip

log = logging.getLogger(__name__)


@implementer(IHostnameResolver)
class PublicOnlyResolver:
    def __init__(self, reactor: Any, policy: AddressPolicy):
        self.reactor, self.policy = reactor, policy
        self.upstream: IHostnameResolver = reactor.nameResolver

    @classmethod
    def from_crawler(cls, crawler: Any, reactor: Any) -> PublicOnlyResolver:
        return cls(reactor, crawl_policy(crawler).addresses)

    def install_on_reactor(self) -> None:
        self.reactor.installNameResolver(self)

    def resolveHostName(self, resolutionReceiver: IResolutionReceiver, hostName: str, portNumber: int = 0,
                        addressTypes: Sequence[type[IAddress]] | None = None,
                        transportSemantics: str = "TCP") -> IHostResolution:
        return self.upstream.resolveHostName(_Permitted(resolutionReceiver, hostName, self.policy), hostName,
                                             portNumber, addressTypes, transportSemantics)


@provider(IResolutionReceiver)
class _Permitted:
    """Hands the receiver only the permitted answers; with none left the connection fails as a DNS lookup error."""

    def __init__(self, receiver: IResolutionReceiver, host: str, policy: AddressPolicy):
        self.receiver, self.host, self.policy = receiver, host, policy

    def resolutionBegan(self, resolution: IHostResolution) -> None:
        self.receiver.resolutionBegan(resolution)

    def addressResolved(self, address: IAddress) -> None:
        ip = parse_ip(getattr(address, "host", ""))
        if ip is not None and self.policy.permits(self.host, ip):
            self.receiver.addressResolved(address)
        else:
            log.warning("event=dns_refused host=%s address=%s reason=private_address "
                        "hint=non-public answer at connect time (DNS rebinding?); add the host to "
                        "FCMON_CRAWL_ALLOW_HOSTS only for a site you run", self.host, getattr(address, "host", address))

    def resolutionComplete(self) -> None:
        self.receiver.resolutionComplete()
