"""The one settings class. Sources, strongest first: command-line options, `FCMON_*` environment
variables, the TOML config file (`FCMON_CONFIG`, else `<data dir>/fcmon.toml`), then these defaults.
Every field is documented in docs/settings.md; a test fails when one is not.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

REPO_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"

DEFAULT_GUARDS = {
    "guards.provenance.PublicProvenance": 100,
    "guards.provenance.LawfullyObtained": 200,
    "guards.purpose.LawfulPurpose": 300,
    "guards.first_amendment.FirstAmendment": 400,
    "guards.relevance.Relevance": 500,
    "guards.pii.PiiMinimization": 600,
    "guards.subjects.NonSubjects": 700,
}

CommaList = Annotated[list[str], NoDecode]
# FCMON_* variables that are not settings: read by the CLI, the test stack and scripts/stack (README).
OTHER_ENV = frozenset({"FCMON_CONFIG", "FCMON_DEBUG", "FCMON_LOG_LEVEL", "FCMON_STACK_DIR", "FCMON_STACK_CACHE",
                       "FCMON_STACK_ELASTICSEARCH_ADMIN", "FCMON_REQUIRE_STACK", "FCMON_REQUIRE_BROWSER"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FCMON_", extra="forbid", validate_default=True)

    data_dir: Path | None = Field(None, description="Where the local bus, index, audit log and state live.")
    config_dir: Path = Field(REPO_CONFIG_DIR, description="Lexicons, sample taskings, schemas and templates.")
    user: str | None = Field(None, description="The acting user of commands that need one (same as --as).")

    bus: Literal["local", "kafka"] = Field("local", description="Message bus backend.")
    index: Literal["local", "elasticsearch"] = Field("local", description="Search index backend.")
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka brokers, comma separated (bus=kafka).")
    elasticsearch_url: str | None = Field(None, description="Elasticsearch URL (index=elasticsearch).")
    elasticsearch_password: SecretStr | None = Field(None, description="Password of fcmon's Elasticsearch service account.")

    crawl_allow_hosts: CommaList = Field(default_factory=list, description="Private, loopback or link-local hosts/networks the crawler may fetch (e.g. 127.0.0.1 for tests); empty refuses them all.")
    crawl_user_agent: str = Field("fcmon/0.1 (+{contact_url}; public-content monitor; honours robots.txt)", description="User-Agent sent with every request; {contact_url} is filled in.")
    crawl_contact_url: str = Field("https://example.org/fcmon-crawler", description="Where a site owner learns who crawls them and how to object.")
    crawl_depth_limit: int = Field(3, ge=0, le=20, description="Link depth from the start URL.")
    crawl_page_limit: int = Field(200, ge=1, description="Pages fetched per crawl at most.")
    crawl_download_delay: float = Field(0.5, ge=0, description="Seconds between requests to one site (AutoThrottle adapts from here).")
    crawl_concurrency_per_domain: int = Field(2, ge=1, le=16, description="Parallel requests to one site.")
    crawl_max_bytes: int = Field(5 * 1024 * 1024, ge=1024, description="Largest response body accepted, after decompression.")
    crawl_timeout: float = Field(20.0, gt=0, description="Seconds before a request is abandoned.")
    crawl_login_url_pattern: str = Field(
        r"(?i)/(log[-_]?in|logon|sign[-_]?in|sign[-_]?up|register|auth|oauth|session|wp-login|servicelogin"
        r"|account/(new|create))(/|\?|$|\.|;|#)|[/?&=]special:(userlogin|createaccount)",
        description="URL paths never requested, and items whose URLs match them rejected: login and sign-up pages. It "
                    "fails closed: a public page whose path has such a segment (/auth/..., /session/...) is refused too.")
    crawl_sources_file: Path | None = Field(None, description="The sources file of `fcmon crawl SOURCE` and `--all` (default: <config_dir>/sources.toml).")
    crawl_pages_per_domain: int = Field(500, ge=1, description="Pages fetched from one host per crawl at most (a crawl-trap limit).")
    crawl_query_variants: int = Field(50, ge=1, description="Distinct query strings fetched per host and path at most (stops calendar and facet traps).")
    crawl_max_query_params: int = Field(12, ge=0, description="Query parameters a URL may carry; URLs with more are refused.")

    monitor_interval: float = Field(300.0, gt=0, description="Seconds between two polls of a source under `fcmon monitor run` when the source sets no `interval`.")
    monitor_min_interval: float = Field(60.0, gt=0, description="The politest interval allowed: a source whose `interval` (or monitor_interval) is shorter is refused before anything is fetched.")
    monitor_pages: int = Field(10, ge=1, le=50, description="Pages per start URL the monitor follows back to the last post already seen, when the source sets no `pages`.")
    monitor_host_delay: float = Field(1.0, ge=0, description="Seconds between two requests to one host (and port) from all the monitor's sources together: one budget per host.")
    monitor_retry_after_default: float = Field(60.0, ge=0, description="Seconds a host is left alone after a 429 or 503 without a Retry-After header.")
    monitor_retry_after_max: float = Field(3600.0, ge=0, description="The longest Retry-After the monitor waits (a longer one is cut to this).")
    monitor_backoff_max: float = Field(3600.0, gt=0, description="Longest wait before the next poll of a source whose polls keep failing (the interval doubles per failure up to this).")

    watch_webhook_allow: CommaList = Field(default_factory=list, description="URL prefixes (internal services; each http or https, up to at least its path's first `/`) a standing query's `--webhook` may point at; empty allows none.")
    watch_webhook_timeout: float = Field(5.0, gt=0, description="Seconds the worker waits for a watch's webhook to answer before it logs the delivery as failed (the alert stays in the inbox).")

    work_batch_size: int = Field(2000, ge=1, description="Messages the worker takes per batch before it commits (each batch is one index commit; docs/benchmarks.md).")
    work_group: str = Field("fcmon-worker", description="Consumer group of the guard/index worker.")

    guards: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_GUARDS), description="Guard stages and their order (lower runs first), like Scrapy's ITEM_PIPELINES.")

    submitting_agency: str = Field("Example Fusion Center", description="Submitting agency label on every record (28CFR23.20(g)).")
    control_official: str = Field("Privacy Officer, Example Fusion Center", description="Control official label on every record (28CFR23.20(g)).")
    retention_days_criminal: int = Field(5 * 365, ge=1, le=5 * 365, description="Review/purge period of criminal-predicate records; never over five years (28CFR23.20(h)).")
    retention_days_noncriminal: int = Field(365, ge=1, le=5 * 365, description="Review/purge period of information-gathering and public-safety records.")
    quarantine_days: int = Field(30, ge=1, description="Days a quarantined item is held for a supervisor before it is purged.")

    demo_site_port: int = Field(8741, ge=1, le=65535, description="Port of the demo's fixture site on 127.0.0.1 (fixed, so record ids repeat).")

    elasticsearch_username: str = Field("fcmon", description="fcmon's Elasticsearch service account (index=elasticsearch; password: elasticsearch_password).")
    elasticsearch_records_alias: str = Field("fcmon-records", description="Alias fcmon reads and writes records through; the first index behind it is <alias>-v1, so re-indexing is a new index and an alias swap.")
    gateway_service_account: str = Field("fcmon", description="The only fcmon user whose writes and deletes the Kibana gateway forwards.")
    gateway_max_body_bytes: int = Field(100 * 1024 * 1024, ge=1024, description="Largest request body the Kibana gateway reads (bytes; Elasticsearch's own default http.max_content_length); a larger one is refused with 413 before it is read.")
    gateway_max_connections: int = Field(500, ge=1, description="Connections the Kibana gateway serves at once (uvicorn's limit-concurrency; Kibana keeps a pool of sockets to it); the next is answered 503 at once.")
    gateway_listen_backlog: int = Field(128, ge=1, le=65535, description="Connections the kernel queues for the gateway before it accepts them (the listen backlog; Linux caps it at net.core.somaxconn).")
    web_max_connections: int = Field(200, ge=1, description="Connections the web console and API serve at once (uvicorn's limit-concurrency); the next is answered 503 at once.")
    web_listen_backlog: int = Field(128, ge=1, le=65535, description="Connections the kernel queues for the console before it accepts them (the listen backlog; Linux caps it at net.core.somaxconn).")
    gateway_kibana_account: str = Field("kibana_system", description="The user Kibana itself logs in as (an fcmon user with the same password): the only one whose requests on Kibana's system indices the gateway forwards, with its own credentials.")
    audit_fsync: bool = Field(False, description="Each audit entry and the log's head on disk (fsync) before the action it records goes on, so a power loss cannot take the newest entries; off, an entry survives fcmon crashing but not the machine (with bus=kafka it is also on the brokers first). Costs ~0.5 ms an entry here, ~0.1 ms without (README, how durable an audit entry is).")
    duty_timezone: str = Field("UTC", description="Time zone (IANA name, e.g. America/Chicago) in which duty hours are read.")
    duty_hours_default: str | None = Field(None, pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$", description="Duty window HH:MM-HH:MM for users without their own; unset: their queries are never highlighted as off-hours.")

    kafka_client_id: str = Field("fcmon", description="Client id fcmon's Kafka producers and consumers send (bus=kafka).")
    kafka_create_topics: bool = Field(True, description="Create missing fcm.* topics (partitions and retention as in docs/kafka.md) when the bus opens; off where ACLs forbid it (then run `fcmon bus create-topics` as an administrator).")
    kafka_idempotence: bool = Field(True, description="Idempotent producer (no duplicates from producer retries); falls back with a log line when the broker cannot.")
    kafka_compression_type: Literal["none", "gzip"] = Field("none", description="Producer compression (measured in docs/benchmarks.md; gzip saves bytes on slow links, costs CPU).")
    kafka_linger_ms: int = Field(20, ge=0, description="Producer wait for a fuller batch (ms).")
    kafka_batch_size: int = Field(262144, ge=1024, description="Producer batch size per partition (bytes).")
    kafka_delivery_timeout_ms: int = Field(30000, ge=1000, description="A produced message not acknowledged by then fails flush() loudly (ms); also bounds the wait for broker metadata.")
    kafka_session_timeout_ms: int = Field(6000, ge=1000, description="Consumer-group session timeout (ms): a dead worker's partitions move after this long; Apache Kafka refuses values below its group.min.session.timeout.ms (6000 by default).")
    kafka_heartbeat_interval_ms: int = Field(1000, ge=100, description="Consumer heartbeat interval (ms); at most a third of the session timeout.")
    kafka_max_poll_interval_ms: int = Field(300000, ge=1000, description="A worker that does not poll for this long leaves the group (ms); the worker keeps polling while it backs off.")
    kafka_fetch_max_wait_ms: int = Field(100, ge=0, description="Longest a fetch waits for new messages (ms): lower means lower latency, more requests.")

    @field_validator("crawl_allow_hosts", "watch_webhook_allow", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("watch_webhook_allow")
    @classmethod
    def _http_prefixes(cls, value: list[str]) -> list[str]:
        """A webhook prefix names its scheme (http or https) and host up to the path's first `/`: no other scheme
        (file:, ftp:) reaches urlopen, and `http://alerts.internal` does not also allow `http://alerts.internal.example`."""
        for prefix in value:
            scheme, _, rest = prefix.partition("://")
            if scheme.lower() not in ("http", "https") or "/" not in rest or rest.startswith("/"):
                raise ValueError(f"webhook prefix {prefix!r} must be an http(s) URL up to at least its path's first '/', "
                                 "e.g. http://alerts.internal:9000/")
        return value

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file(init_settings())
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @property
    def user_agent(self) -> str:
        return self.crawl_user_agent.replace("{contact_url}", self.crawl_contact_url)


def _config_file(init: dict[str, Any]) -> Path | None:
    explicit = os.environ.get("FCMON_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} (FCMON_CONFIG) does not exist")
        return path
    data_dir = init.get("data_dir") or os.environ.get("FCMON_DATA_DIR")
    if data_dir and (Path(data_dir) / "fcmon.toml").is_file():
        return Path(data_dir) / "fcmon.toml"
    return None


def unknown_env(environ: dict[str, str] | None = None) -> list[str]:
    """FCMON_* environment variables that name no setting (a misspelt FCMON_RETENTION_DAYS_CRIMNAL would be ignored)."""
    known = {f"FCMON_{name.upper()}" for name in Settings.model_fields} | OTHER_ENV
    return sorted(n for n in (environ if environ is not None else os.environ) if n.upper().startswith("FCMON_")
                  and n.upper() not in known)


def missing_secrets(settings: Settings) -> list[str]:
    """What the chosen backends need and the settings lack (an Elasticsearch index needs its URL and password)."""
    if settings.index != "elasticsearch":
        return []
    password = settings.elasticsearch_password.get_secret_value() if settings.elasticsearch_password else ""
    return [name for name, value in (("elasticsearch_url", settings.elasticsearch_url), ("elasticsearch_password", password))
            if not value]
