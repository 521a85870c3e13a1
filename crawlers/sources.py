"""The sources file (config/sources.toml): what an operator tells fcmon to collect, validated before any crawl.

One `[[source]]` table per source, told apart by `kind`: feed, site, mastodon, bluesky, reddit, telegram,
youtube. Every API base URL is a field, so tests and mirrors point a source at another host. A source may name
the tasking it serves (`tasking = "ID"`); `fcmon crawl --tasking ID` overrides it. docs/sources.md has the format.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from urllib.parse import quote, urlencode, urlsplit

import lxml.etree
import regex
from cssselect import GenericTranslator, SelectorError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import FcmonError
from pipeline.models import Tasking

SOURCE_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
EXTRACT_FIELDS = ("title", "text", "author", "published_at")


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


def _base(value: str) -> str:
    return _http_url(value).rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url)]
BaseUrl = Annotated[str, AfterValidator(_base)]


def scope_terms(keywords: list[str]) -> list[str]:
    """Tasking keywords usable as hashtags or search terms: without a leading '#', deduplicated, in order."""
    return list(dict.fromkeys(k.lstrip("#") for k in keywords if k.lstrip("#")))


def hashtag(term: str) -> str | None:
    """A term as a hashtag name (letters, digits, underscore), or None when it cannot be one."""
    tag = term.lstrip("#")
    return tag if regex.fullmatch(r"\w+", tag) else None


class SourceBase(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(pattern=SOURCE_ID, description="Unique name of the source: `fcmon crawl ID`; items carry it as source_id.")
    tasking: str | None = Field(None, description="The tasking this source serves (overridden by --tasking).")
    enabled: bool = Field(True, description="Crawled by `fcmon crawl --all` (a disabled source still runs by name).")
    depth_limit: int | None = Field(None, ge=0, le=20, description="Link depth (default: crawl_depth_limit).")
    page_limit: int | None = Field(None, ge=1, description="Pages fetched per crawl (default: crawl_page_limit).")
    pages: int | None = Field(None, ge=1, le=50, description="API or feed pages per start URL, following the platform's "
                              "own pagination (older posts) back to the last post already seen (default: 1 for "
                              "`fcmon crawl`, monitor_pages under `fcmon monitor run`).")
    interval: float | None = Field(None, gt=0, description="Seconds between polls under `fcmon monitor run` "
                                   "(default: monitor_interval; never below monitor_min_interval).")

    def scope_urls(self) -> list[str]:
        """URLs whose hosts must lie within the tasking's domains (when it names any)."""
        raise NotImplementedError

    def start_urls(self, tasking: Tasking) -> list[str]:
        raise NotImplementedError


class FeedSource(SourceBase):
    kind: Literal["feed"]
    urls: list[HttpUrl] = Field(min_length=1, description="RSS or Atom feed URLs.")
    follow_articles: bool = Field(True, description="Fetch each entry's linked article and extract its main text.")
    allowed_domains: list[str] = Field(default_factory=list, description="Hosts whose articles are fetched (default: the feeds' hosts).")


    def scope_urls(self) -> list[str]:
        return self.urls

    def start_urls(self, tasking: Tasking) -> list[str]:
        return self.urls


class SiteSource(SourceBase):
    kind: Literal["site"]
    start_urls_: list[HttpUrl] = Field(default_factory=list, alias="start_urls", description="Where the crawl starts.")
    sitemaps: list[HttpUrl] = Field(default_factory=list, description="sitemap.xml URLs whose pages are fetched.")
    allowed_domains: list[str] = Field(default_factory=list, description="Hosts (and their subdomains) links may lead to (default: the start URLs' host and port).")
    allow: list[str] = Field(default_factory=list, description="Regexes a followed link must match (any).")
    deny: list[str] = Field(default_factory=list, description="Regexes no followed link may match.")
    extract: dict[str, str] = Field(default_factory=dict, description="Per-field rules `css:SELECTOR` or `xpath:EXPR` for title, text, author, published_at.")

    @field_validator("allow", "deny")
    @classmethod
    def _regexes(cls, values: list[str]) -> list[str]:
        for pattern in values:
            try:
                regex.compile(pattern)
            except regex.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regex ({exc})") from None
        return values

    @field_validator("allowed_domains")
    @classmethod
    def _domains(cls, values: list[str]) -> list[str]:
        return [v.strip().lower().rstrip(".") for v in values if v.strip()]

    @field_validator("extract")
    @classmethod
    def _rules(cls, rules: dict[str, str]) -> dict[str, str]:
        for name, rule in rules.items():
            if name not in EXTRACT_FIELDS:
                raise ValueError(f"unknown extraction field {name!r} (one of {', '.join(EXTRACT_FIELDS)})")
            how, _, expr = rule.partition(":")
            try:
                if how == "css":
                    GenericTranslator().css_to_xpath(expr.split("::", 1)[0])
                elif how == "xpath":
                    lxml.etree.XPath(expr)
                else:
                    raise ValueError(f"rule for {name} must start with css: or xpath:, not {rule!r}")
            except (SelectorError, lxml.etree.XPathError) as exc:
                raise ValueError(f"{how} rule for {name} is invalid: {expr!r} ({exc})") from None
        return rules

    @model_validator(mode="after")
    def _something_to_crawl(self) -> SiteSource:
        if not self.start_urls_ and not self.sitemaps:
            raise ValueError("a site source needs start_urls or sitemaps")
        return self

    @classmethod
    def for_start_url(cls, start_url: str) -> SiteSource:
        """The ad-hoc source of `fcmon crawl --start-url URL`: that site (host and port) only; source_id is its host."""
        return cls(kind="site", id=(urlsplit(start_url).hostname or "site")[:64], start_urls=[start_url])

    def scope_urls(self) -> list[str]:
        return [*self.start_urls_, *self.sitemaps]

    def start_urls(self, tasking: Tasking) -> list[str]:
        return self.start_urls_


class MastodonSource(SourceBase):
    kind: Literal["mastodon"]
    instance: BaseUrl = Field(description="The instance's base URL, e.g. https://mastodon.social (its public REST API).")
    public: bool = Field(False, description="Read the public timeline (/api/v1/timelines/public).")
    local: bool = Field(False, description="Only posts of the instance's own users (public and hashtag timelines).")
    hashtags: list[str] = Field(default_factory=list, description="Hashtag timelines to read (default: the tasking's keywords that are hashtags).")
    limit: int = Field(40, ge=1, le=40, description="Posts per API call.")


    def scope_urls(self) -> list[str]:
        return [self.instance]

    def tags(self, tasking: Tasking) -> list[str]:
        terms = self.hashtags or scope_terms(tasking.scope.keywords)
        return [t for t in (hashtag(term) for term in terms) if t]

    def start_urls(self, tasking: Tasking) -> list[str]:
        query = {"limit": self.limit} | ({"local": "true"} if self.local else {})
        urls = [f"{self.instance}/api/v1/timelines/public?{urlencode(query)}"] if self.public else []
        return urls + [f"{self.instance}/api/v1/timelines/tag/{quote(t)}?{urlencode(query)}" for t in self.tags(tasking)]


class BlueskySource(SourceBase):
    kind: Literal["bluesky"]
    api: BaseUrl = Field("https://public.api.bsky.app", description="The public AppView (no account, no token).")
    web: BaseUrl = Field("https://bsky.app", description="Where post permalinks point.")
    search: list[str] = Field(default_factory=list, description="Search terms for app.bsky.feed.searchPosts (default: the tasking's keywords).")
    authors: list[str] = Field(default_factory=list, description="Handles or DIDs whose posts app.bsky.feed.getAuthorFeed reads.")
    limit: int = Field(25, ge=1, le=100, description="Posts per API call.")


    def scope_urls(self) -> list[str]:
        return [self.api, self.web]

    def start_urls(self, tasking: Tasking) -> list[str]:
        terms = self.search or ([] if self.authors else scope_terms(tasking.scope.keywords))
        xrpc = f"{self.api}/xrpc"
        return ([f"{xrpc}/app.bsky.feed.searchPosts?{urlencode({'q': t, 'limit': self.limit, 'sort': 'latest'})}" for t in terms]
                + [f"{xrpc}/app.bsky.feed.getAuthorFeed?{urlencode({'actor': a, 'limit': self.limit, 'filter': 'posts_no_replies'})}"
                   for a in self.authors])


class RedditSource(SourceBase):
    kind: Literal["reddit"]
    base: BaseUrl = Field("https://www.reddit.com", description="Reddit's base URL (its public RSS feeds).")
    subreddits: list[str] = Field(default_factory=list, description="Subreddits whose new posts are read (/r/NAME/new/.rss).")
    search: list[str] = Field(default_factory=list, description="Search terms (search.rss, within the subreddits when given); default: the tasking's keywords when no subreddit is named.")


    def scope_urls(self) -> list[str]:
        return [self.base]

    def start_urls(self, tasking: Tasking) -> list[str]:
        terms = self.search or ([] if self.subreddits else scope_terms(tasking.scope.keywords))
        urls = [f"{self.base}/r/{quote(s)}/new/.rss" for s in self.subreddits if not self.search]
        for term in terms:
            if self.subreddits:
                urls += [f"{self.base}/r/{quote(s)}/search.rss?{urlencode({'q': term, 'restrict_sr': 'on', 'sort': 'new'})}"
                         for s in self.subreddits]
            else:
                urls.append(f"{self.base}/search.rss?{urlencode({'q': term, 'sort': 'new'})}")
        return urls


class TelegramSource(SourceBase):
    kind: Literal["telegram"]
    base: BaseUrl = Field("https://t.me", description="Telegram's web preview host (/s/NAME pages need no account).")
    channels: list[str] = Field(min_length=1, description="Public channel names.")


    def scope_urls(self) -> list[str]:
        return [self.base]

    def start_urls(self, tasking: Tasking) -> list[str]:
        return [f"{self.base}/s/{quote(c.lstrip('@'))}" for c in self.channels]


class YouTubeSource(SourceBase):
    kind: Literal["youtube"]
    base: BaseUrl = Field("https://www.youtube.com", description="YouTube's base URL (its public channel feeds).")
    channels: list[str] = Field(min_length=1, description="Channel ids (UC...), read from /feeds/videos.xml?channel_id=ID.")


    def scope_urls(self) -> list[str]:
        return [self.base]

    def start_urls(self, tasking: Tasking) -> list[str]:
        return [f"{self.base}/feeds/videos.xml?{urlencode({'channel_id': c})}" for c in self.channels]


Source = Annotated[Union[FeedSource, SiteSource, MastodonSource, BlueskySource, RedditSource, TelegramSource, YouTubeSource],
                   Field(discriminator="kind")]
SOURCE_KINDS = ("feed", "site", "mastodon", "bluesky", "reddit", "telegram", "youtube")


class SourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: list[Source] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> SourcesFile:
        seen: set[str] = set()
        for s in self.source:
            if s.id in seen:
                raise ValueError(f"source id {s.id!r} is used twice")
            seen.add(s.id)
        return self

    def get(self, source_id: str) -> SourceBase:
        for s in self.source:
            if s.id == source_id:
                return s
        known = ", ".join(s.id for s in self.source) or "none"
        raise FcmonError(f"no source {source_id!r} in the sources file (known: {known})", "pass a source id from the file, or add it")


def _where(raw: dict[str, Any], loc: tuple[Any, ...]) -> tuple[str, str]:
    """(which source, which field) of a validation error location such as ('source', 2, 'mastodon', 'instance')."""
    if len(loc) >= 2 and loc[0] == "source" and isinstance(loc[1], int):
        entries = raw.get("source") or []
        entry = entries[loc[1]] if loc[1] < len(entries) and isinstance(entries[loc[1]], dict) else {}
        name = f"source {entry.get('id', '#' + str(loc[1] + 1))!r}"
        rest = [str(p) for p in loc[2:] if p not in SOURCE_KINDS]
        return name, ".".join(rest).replace("start_urls_", "start_urls") or "(source)"
    return "the file", ".".join(str(p) for p in loc) or "(top level)"


def parse_sources(text: str, origin: str = "sources file") -> SourcesFile:
    """Validate a sources file's text; any fault is one FcmonError naming the source and the field."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FcmonError(f"{origin}: not valid TOML ({exc})", "fix the syntax (see docs/sources.md)") from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise FcmonError(f"{origin}: not valid TOML (nested too deeply)", "fix the syntax (see docs/sources.md)") from None
    try:
        return SourcesFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        who, field = _where(raw, tuple(first["loc"]))
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
            field, message = "kind", f"missing or unknown kind (one of {', '.join(SOURCE_KINDS)})"
        raise FcmonError(f"{origin}: {who}: {field}: {message}", "fix the file (see docs/sources.md)") from None


def load_sources(path: Path) -> SourcesFile:
    if not path.is_file():
        raise FcmonError(f"sources file {path} does not exist", "create it (see docs/sources.md) or set FCMON_CRAWL_SOURCES_FILE")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FcmonError(f"{path}: not UTF-8 (byte {exc.start})", "save the file as UTF-8 (TOML is UTF-8)") from None
    return parse_sources(text, str(path))
