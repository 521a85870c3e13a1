"""Connect-time DNS answers are checked too (DNS rebinding): crawlers/resolver.py under a real Twisted HTTP client."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
from twisted.internet.address import IPv4Address, IPv6Address

from crawlers.netpolicy import AddressPolicy
from crawlers.resolver import PublicOnlyResolver
from crawlers.settings import scrapy_settings
from pipeline.demosite import DemoSite
from pipeline.settings import Settings

# A real Twisted HTTP client (the one Scrapy's downloader uses) whose DNS answers `rebind.example` with 127.0.0.1
# at connect time: what a rebinding DNS server does after a first, public answer passed PublicOnlyMiddleware.
CONNECT = """
import sys
from scrapy.resolver import HostResolution
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.web.client import Agent
from crawlers.netpolicy import AddressPolicy
from crawlers.resolver import PublicOnlyResolver

class RebindingDns:
    def resolveHostName(self, receiver, name, port=0, address_types=None, semantics="TCP"):
        receiver.resolutionBegan(HostResolution(name))
        receiver.addressResolved(IPv4Address("TCP", "127.0.0.1", port))
        receiver.resolutionComplete()
        return receiver

reactor.installNameResolver(RebindingDns())
PublicOnlyResolver(reactor, AddressPolicy(sys.argv[2:])).install_on_reactor()
def get():
    done = Agent(reactor, connectTimeout=5).request(b"GET", sys.argv[1].encode())
    done.addCallbacks(lambda response: print("connected", response.code), lambda failure: print("failed", failure.type.__name__))
    done.addBoth(lambda _: reactor.stop())
reactor.callWhenRunning(get)
reactor.run()
"""


def connect(url: str, *allow: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FCMON_")}
    done = subprocess.run([sys.executable, "-c", CONNECT, url, *allow], capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def site():
    with DemoSite(port=0) as s:
        yield s


def test_a_name_rebound_to_a_private_address_is_never_connected_to(site):
    before = len(site.requests)
    assert connect(f"http://rebind.example:{site.port}/robots.txt") == "failed DNSLookupError"
    assert len(site.requests) == before  # nothing reached the private address


@pytest.mark.parametrize("allow", ["127.0.0.1", "127.0.0.0/8", "rebind.example"])
def test_an_allow_listed_address_or_name_is_connected_to(site, allow):
    before = len(site.requests)
    assert connect(f"http://rebind.example:{site.port}/robots.txt", allow) == "connected 200"
    assert [r["path"] for r in site.requests[before:]] == ["/robots.txt"]


@dataclass
class Recorder:
    addresses: list
    complete: bool = False

    def resolutionBegan(self, resolution):
        pass

    def addressResolved(self, address):
        self.addresses.append(address.host)

    def resolutionComplete(self):
        self.complete = True


class Answers:
    """DNS answering with fixed addresses."""

    def __init__(self, *answers):
        self.answers = answers

    def resolveHostName(self, receiver, name, port=0, address_types=None, semantics="TCP"):
        receiver.resolutionBegan(None)
        for answer in self.answers:
            receiver.addressResolved(answer)
        receiver.resolutionComplete()
        return receiver


class Reactor:
    def __init__(self, dns):
        self.nameResolver = dns


def test_only_permitted_answers_are_handed_on_and_each_refusal_is_logged(caplog):
    dns = Answers(IPv4Address("TCP", "93.184.215.14", 80), IPv4Address("TCP", "169.254.169.254", 80),
                  IPv6Address("TCP", "::1", 80), IPv6Address("TCP", "2606:4700::1111", 80))
    recorder = Recorder([])
    PublicOnlyResolver(Reactor(dns), AddressPolicy()).resolveHostName(recorder, "mixed.example", 80)
    assert recorder.addresses == ["93.184.215.14", "2606:4700::1111"] and recorder.complete
    refused = [r.getMessage() for r in caplog.records if "event=dns_refused" in r.getMessage()]
    assert len(refused) == 2 and "169.254.169.254" in refused[0] and "::1" in refused[1]


def test_every_crawl_resolves_through_it():
    assert scrapy_settings(Settings())["TWISTED_DNS_RESOLVER"] == "crawlers.resolver.PublicOnlyResolver"
