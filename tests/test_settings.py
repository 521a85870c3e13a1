"""Settings: defaults, environment, TOML file, precedence and validation."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipeline.settings import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os
    for name in list(os.environ):
        if name.startswith("FCMON_"):
            monkeypatch.delenv(name)


def test_environment_lists_are_comma_separated(monkeypatch):
    monkeypatch.setenv("FCMON_CRAWL_ALLOW_HOSTS", "127.0.0.1, 10.0.0.0/8")
    assert Settings().crawl_allow_hosts == ["127.0.0.1", "10.0.0.0/8"]


def test_the_config_file_is_read_and_the_environment_wins(tmp_path, monkeypatch):
    (tmp_path / "fcmon.toml").write_text('crawl_page_limit = 7\ncrawl_depth_limit = 1\nsubmitting_agency = "North Fusion Center"\n')
    monkeypatch.setenv("FCMON_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FCMON_CRAWL_DEPTH_LIMIT", "2")
    settings = Settings()
    assert (settings.crawl_page_limit, settings.crawl_depth_limit, settings.submitting_agency) == (7, 2, "North Fusion Center")


def test_retention_may_never_exceed_five_years():
    with pytest.raises(ValidationError):
        Settings(retention_days_criminal=5 * 365 + 1)


def test_unknown_keys_in_the_file_are_errors(tmp_path, monkeypatch):
    (tmp_path / "x.toml").write_text("crawl_pagelimit = 7\n")
    monkeypatch.setenv("FCMON_CONFIG", str(tmp_path / "x.toml"))
    with pytest.raises(ValidationError, match="crawl_pagelimit"):
        Settings()


def test_the_user_agent_names_fcmon_and_its_contact():
    settings = Settings(crawl_contact_url="https://center.example/crawler")
    assert "fcmon" in settings.user_agent and "https://center.example/crawler" in settings.user_agent


@pytest.mark.parametrize("prefix", ["file:///etc/", "ftp://alerts.internal/", "http://alerts.internal", "https:///x/", "alerts/"])
def test_a_webhook_prefix_is_an_http_url_with_its_host_closed(prefix):
    """urlopen opens file: and ftp: URLs too; a prefix without its host's `/` allowed any host that began alike."""
    with pytest.raises(ValidationError, match="must be an http"):
        Settings(watch_webhook_allow=[prefix])
    assert Settings(watch_webhook_allow=["http://alerts.internal:9000/", "HTTPS://a.b/hooks/"]).watch_webhook_allow
