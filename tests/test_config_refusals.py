"""Bad configuration refused by the real `fcmon` daemons before anything starts: unknown keys, wrong types, missing
secrets and retention over the five-year cap (28CFR23.20(h)), in the settings file, in FCMON_* variables and in the
sources file. Each: exit status 2, one line on stderr that names the fault, no port opened, the data directory as it
was (not a file added or changed). A good configuration does start (the control case)."""
from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.datadirs import FCMON, fcmon
from tests.test_demo import free_port

DEAD_ES = "http://127.0.0.1:9"  # nothing listens there: a daemon that started anyway would not reach it either


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("config")
    fcmon("init", env={"FCMON_DATA_DIR": str(root / "data")}, check=True)
    fcmon("user", "add", "alice", "--role", "analyst", env={"FCMON_DATA_DIR": str(root / "data")}, check=True)
    (root / "sources.toml").write_text('[[source]]\nid = "news"\nkind = "feed"\nurls = ["http://127.0.0.1:9/feed.xml"]\n')
    return root


def snapshot(data: Path, strict: bool = True) -> dict[str, tuple[int, int]]:
    """Every file of the data directory with its size and modification time (not strict: without SQLite's -wal and
    -shm files, which reading a database may make)."""
    return {str(p.relative_to(data)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(data.rglob("*"))
            if p.is_file() and (strict or not p.name.endswith(("-wal", "-shm")))}


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def command(name: str, port: int) -> list[str]:
    return {"work": ["work"], "serve": ["serve", "--listen", f"127.0.0.1:{port}"], "crawl": ["crawl", "news", "--as", "alice"],
            "gateway": ["gateway", "--listen", f"127.0.0.1:{port}", "--upstream", DEAD_ES]}[name]


def refused(home: Path, name: str, env: dict[str, str], *fragments: str, toml: bytes | None = None, strict: bool = True) -> None:
    data = home / "data"
    config = data / "fcmon.toml"
    if toml is not None:
        config.write_bytes(toml)
    try:
        before, port = snapshot(data, strict), free_port()
        env = {"FCMON_DATA_DIR": str(data), "FCMON_CRAWL_SOURCES_FILE": str(home / "sources.toml")} | env
        result = fcmon(*command(name, port), env=env, timeout=60)
        assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("fcmon: error: "), result.stderr[-2000:]
        assert all(f in lines[0] for f in fragments), lines[0]
        assert not listening(port)
        assert snapshot(data, strict) == before
    finally:
        config.unlink(missing_ok=True)


ALL = ["work", "serve", "crawl", "gateway"]
TOML_CASES = {  # name: (settings file, fragments of the one line)
    "unknown key": (b"retention_days = 30\n", ["retention_days", "Extra inputs are not permitted"]),
    "wrong type": (b'work_batch_size = "many"\n', ["work_batch_size", "valid integer"]),
    "retention over the cap": (b"retention_days_criminal = 1826\n", ["retention_days_criminal", "1825"]),
    "noncriminal retention over the cap": (b"retention_days_noncriminal = 99999\n", ["retention_days_noncriminal", "1825"]),
    "missing secret": (b'index = "elasticsearch"\nelasticsearch_url = "' + DEAD_ES.encode() + b'"\n', ["elasticsearch_password"]),
    "not TOML": (b"bus = = kafka\n", ["invalid configuration"]),
    "not UTF-8": (b'bus = "\xff\xfe"\n', ["invalid configuration"]),
    "nested too deeply": (b"guards = " + b"[" * 5000, ["nests too deeply"]),
    "unknown guard": (b'[guards]\n"guards.nope.Missing" = 100\n', ["guards.nope.Missing"]),
}
ENV_CASES = {
    "unknown key": ({"FCMON_RETENTION_DAYS_CRIMNAL": "30"}, ["FCMON_RETENTION_DAYS_CRIMNAL", "names no setting"]),
    "wrong type": ({"FCMON_WORK_BATCH_SIZE": "many"}, ["work_batch_size", "valid integer"]),
    "wrong JSON": ({"FCMON_GUARDS": "{guards.pii.PiiMinimization: 1"}, ["guards"]),
    "retention over the cap": ({"FCMON_RETENTION_DAYS_CRIMINAL": "1826"}, ["retention_days_criminal", "1825"]),
    "missing secret": ({"FCMON_INDEX": "elasticsearch", "FCMON_ELASTICSEARCH_URL": DEAD_ES}, ["elasticsearch_password"]),
    "empty secret": ({"FCMON_INDEX": "elasticsearch", "FCMON_ELASTICSEARCH_URL": DEAD_ES, "FCMON_ELASTICSEARCH_PASSWORD": ""},
                     ["elasticsearch_password"]),
    "config file missing": ({"FCMON_CONFIG": "/nonexistent/fcmon.toml"}, ["/nonexistent/fcmon.toml", "does not exist"]),
}


def rotate(cases: dict) -> list[tuple[str, str]]:
    """Each case under one of the daemons in turn, and the cap and the secret under all of them."""
    chosen = [(case, ALL[n % len(ALL)]) for n, case in enumerate(cases)]
    return chosen + [(case, name) for case in ("retention over the cap", "missing secret") for name in ALL
                     if (case, name) not in chosen]


@pytest.mark.parametrize("case,name", rotate(TOML_CASES), ids=lambda v: v)
def test_settings_file(home, case, name):
    toml, fragments = TOML_CASES[case]
    refused(home, name, {}, *fragments, toml=toml)


@pytest.mark.parametrize("case,name", rotate(ENV_CASES), ids=lambda v: v)
def test_environment(home, case, name):
    env, fragments = ENV_CASES[case]
    refused(home, name, env, *fragments)


SOURCES_CASES = {
    "unknown key": (b'[[source]]\nid = "news"\nkind = "feed"\nurl = ["http://127.0.0.1:9/f"]\n', ["news", "url"]),
    "wrong type": (b'[[source]]\nid = "news"\nkind = "feed"\nurls = "http://127.0.0.1:9/f"\n', ["news", "urls"]),
    "javascript URL": (b'[[source]]\nid = "news"\nkind = "feed"\nurls = ["javascript:alert(1)"]\n', ["news", "http(s) URL"]),
    "unknown kind": (b'[[source]]\nid = "news"\nkind = "myspace"\n', ["news", "kind"]),
    "not UTF-8": (b'[[source]]\nid = "n\xffws"\nkind = "feed"\n', ["not UTF-8"]),
    "nested too deeply": (b"x = " + b"[" * 5000, ["nested too deeply"]),
}


@pytest.mark.parametrize("case", list(SOURCES_CASES))
def test_sources_file(home, tmp_path, case):
    body, fragments = SOURCES_CASES[case]
    (tmp_path / "sources.toml").write_bytes(body)
    # the users are read first (who may crawl), so SQLite may make and remove its -wal and -shm files; the audit log,
    # the bus and the index are as they were (no crawl.start entry, nothing collected)
    refused(home, "crawl", {"FCMON_CRAWL_SOURCES_FILE": str(tmp_path / "sources.toml")}, *fragments, strict=False)


def test_a_good_configuration_starts(home):
    """The control: the same daemon, configured well, opens its port (so a refusal above is the config's doing)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FCMON_")} | {"FCMON_DATA_DIR": str(home / "data")}
    daemon = subprocess.Popen([*FCMON, "serve", "--listen", f"127.0.0.1:{port}"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not listening(port) and daemon.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert listening(port), daemon.stderr.read() if daemon.poll() is not None else "not listening after 60 s"
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
