"""Downloader middlewares that keep the crawl to what the public sees, and record how each page was obtained.

Order (DOWNLOADER_MIDDLEWARES, see crawlers.settings): process_request runs in ascending order, so
PublicOnlyMiddleware (990) and ProvenanceMiddleware (995) see a request as it goes on the wire, after
RobotsTxtMiddleware (100) and every header-setting middleware; process_response runs in descending order,
so LoginWallMiddleware (650) sees a response before RedirectMiddleware (600) can follow it into a login page.
Redirects and robots.txt fetches pass through all of them again.
"""
from __future__ import annotations

import logging
from urllib.parse import urljoin, urlsplit

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import Headers, Response
from scrapy.utils.misc import load_object

from crawlers.netpolicy import AddressPolicy, RequestPolicy
from pipeline.settings import Settings

log = logging.getLogger(__name__)

PUBLIC_ONLY_ORDER = 990
PROVENANCE_ORDER = 995
LOGIN_WALL_ORDER = 650
ROBOTS_MIDDLEWARE = "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware"
WALL_STATUSES = {401: "http_401", 403: "http_403", 407: "http_407"}


def fcmon_settings(crawler: Crawler) -> Settings:
    settings = crawler.settings.get("FCMON_SETTINGS")
    if not isinstance(settings, Settings):
        raise NotConfigured("FCMON_SETTINGS is not set: build the Scrapy settings with crawlers.settings.scrapy_settings()")
    return settings


def crawl_policy(crawler: Crawler) -> RequestPolicy:
    """The crawl's request policy (login URLs, allowed hosts) from its settings: one for every component that checks."""
    settings = fcmon_settings(crawler)
    return RequestPolicy(settings.crawl_login_url_pattern, AddressPolicy(settings.crawl_allow_hosts))


def decode_headers(headers: Headers) -> dict[str, str]:
    """Scrapy's bytes headers as one string per name (several values joined with ', ')."""
    return {name.decode("latin-1"): ", ".join(v.decode("latin-1") for v in values)
            for name, values in headers.items()}


def component_order(crawler: Crawler, setting: str, path: str) -> float | None:
    """The order of an enabled component in a priority dict setting (with its _BASE), or None when it is off."""
    target = load_object(path)
    for component, order in crawler.settings.get_component_priority_dict_with_base(setting).items():
        if order is not None and load_object(component) is target:
            return order
    return None


def sent_headers(request: Request) -> dict[str, str]:
    """The request's headers plus the Host header the HTTP client adds from the URL."""
    headers = decode_headers(request.headers)
    if not any(name.lower() == "host" for name in headers):
        parts = urlsplit(request.url)
        headers["Host"] = parts.netloc.rsplit("@", 1)[-1]
    return headers


class PublicOnlyMiddleware:
    """Refuses, before it is sent, any request that is not an anonymous GET/HEAD of a public http(s) URL."""

    def __init__(self, crawler: Crawler, policy: RequestPolicy):
        self.crawler, self.policy = crawler, policy

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PublicOnlyMiddleware:
        return cls(crawler, crawl_policy(crawler))

    def process_request(self, request: Request) -> None:
        refusal = self.policy.check(request.method, request.url, (n.decode("latin-1") for n in request.headers))
        if refusal is None:
            return None
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value(f"fcmon/refused/{refusal.reason}")
        self.crawler.stats.inc_value("fcmon/refused")
        log.info("event=request_refused reason=%s method=%s url=%s detail=%r", refusal.reason, request.method, request.url, refusal.detail)
        raise IgnoreRequest(f"fcmon refused {request.url}: {refusal.detail}")


class ProvenanceMiddleware:
    """Records on each request what an item needs to prove how it was fetched: robots.txt verdict and headers as sent.

    A request that reaches this middleware got past RobotsTxtMiddleware, so robots.txt allowed it, provided
    ROBOTSTXT_OBEY is on and that middleware runs earlier. Following RFC 9309, a robots.txt that cannot be
    fetched (5xx, network error) means the whole site is disallowed; a missing one (4xx) allows everything.
    """

    def __init__(self, crawler: Crawler, robots_enforced: bool):
        self.crawler, self.robots_enforced = crawler, robots_enforced
        self.unreachable_robots: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ProvenanceMiddleware:
        robots_order = component_order(crawler, "DOWNLOADER_MIDDLEWARES", ROBOTS_MIDDLEWARE)
        enforced = crawler.settings.getbool("ROBOTSTXT_OBEY") and robots_order is not None and robots_order < PROVENANCE_ORDER
        if not enforced:
            log.warning("event=robots_not_enforced detail='ROBOTSTXT_OBEY is off or RobotsTxtMiddleware is disabled: "
                        "items carry robots_allowed=False'")
        return cls(crawler, enforced)

    @staticmethod
    def _is_robots_request(request: Request) -> bool:
        return bool(request.meta.get("dont_obey_robotstxt")) and urlsplit(request.url).path == "/robots.txt"

    def process_request(self, request: Request) -> None:
        assert self.crawler.stats is not None
        if self._is_robots_request(request):
            self.crawler.stats.inc_value("fcmon/requests_sent")
            return None
        netloc = urlsplit(request.url).netloc
        if self.robots_enforced and netloc in self.unreachable_robots:
            self.crawler.stats.inc_value("fcmon/refused/robots_unreachable")
            self.crawler.stats.inc_value("fcmon/refused")
            log.info("event=request_refused reason=robots_unreachable url=%s", request.url)
            raise IgnoreRequest(f"robots.txt of {netloc} could not be fetched: the site counts as disallowed")
        request.meta["fcmon_robots_allowed"] = self.robots_enforced and not request.meta.get("dont_obey_robotstxt", False)
        request.meta["fcmon_sent"] = {"method": request.method, "headers": sent_headers(request)}
        self.crawler.stats.inc_value("fcmon/requests_sent")
        return None

    def process_response(self, request: Request, response: Response) -> Response:
        if self._is_robots_request(request) and response.status >= 500:
            self.unreachable_robots.add(urlsplit(request.url).netloc)
            log.info("event=robots_unreachable url=%s status=%d", request.url, response.status)
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        if self._is_robots_request(request):
            self.unreachable_robots.add(urlsplit(request.url).netloc)
            log.info("event=robots_unreachable url=%s error=%r", request.url, str(exception))
        return None


class LoginWallMiddleware:
    """Stops at a login wall instead of walking through it: 401/403/407, or a redirect into a login URL.

    The response is handed to the spider (handle_httpstatus_list, dont_redirect) with
    meta["fcmon_login_wall"] set, so the spider emits an item marked login_wall_detected for the guards
    to reject, and the login page itself is never requested.
    """

    def __init__(self, crawler: Crawler, policy: RequestPolicy):
        self.crawler, self.policy = crawler, policy

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> LoginWallMiddleware:
        return cls(crawler, crawl_policy(crawler))

    def process_response(self, request: Request, response: Response) -> Response:
        reason = WALL_STATUSES.get(response.status)
        if reason is None and 300 <= response.status < 400 and response.headers.get("Location"):
            location = urljoin(request.url, response.headers["Location"].decode("latin-1"))
            if self.policy.is_login_url(location):
                reason = "redirect_to_login"
        if reason is None:
            return response
        request.meta["fcmon_login_wall"] = reason
        request.meta["dont_redirect"] = True
        request.meta["handle_httpstatus_list"] = [*request.meta.get("handle_httpstatus_list", []), response.status]
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value(f"fcmon/login_wall/{reason}")
        log.info("event=login_wall reason=%s url=%s status=%d", reason, request.url, response.status)
        return response
