"""The real systems in tests: Elasticsearch (one node per test session) and Apache Kafka, from pipeline.stack.

With `eval "$(scripts/stack up)"` in the environment the running stack's Elasticsearch is used; otherwise the session
starts its own in a folder under /tmp. Without Java or Maven these tests skip, saying how to enable them; with
FCMON_REQUIRE_STACK=1 (CI) they fail instead.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from pipeline.stack import StackError, StackState, java_home
from pipeline.stack.elasticsearch import ADMIN_USER, SERVICE_USER, Elasticsearch

ENABLE = "install Java 17 and Maven (apt-get install openjdk-17-jdk-headless maven) and reach Maven Central"


def unavailable(reason: str):
    """Skip (a developer's machine without Java) or fail (FCMON_REQUIRE_STACK=1: CI skips none of it)."""
    if os.environ.get("FCMON_REQUIRE_STACK") == "1":
        pytest.fail(f"the real stack is required here (FCMON_REQUIRE_STACK=1): {reason}")
    pytest.skip(f"needs the real stack: {reason}; {ENABLE} to run it")


def require_java_and_maven() -> None:
    try:
        java_home(17)
    except StackError as exc:
        unavailable(str(exc))
    if shutil.which("mvn") is None:
        unavailable("Maven is not installed")


def stack_dir(prefix: str) -> Path:
    """A folder Elasticsearch's system user can reach (pytest's tmp_path is closed to other users)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


@dataclass
class EsNode:
    """A running node and fcmon's two accounts on it: the service account fcmon writes with, and an administrator."""
    url: str
    passwords: dict[str, str]

    @property
    def service_auth(self) -> tuple[str, str]:
        return SERVICE_USER, self.passwords[SERVICE_USER]

    @property
    def admin_auth(self) -> tuple[str, str]:
        return ADMIN_USER, self.passwords[ADMIN_USER]

    def client(self, admin: bool = False, **kwargs):
        from elasticsearch import Elasticsearch as Client
        return Client(self.url, basic_auth=self.admin_auth if admin else self.service_auth, **kwargs)

    def settings(self, **overrides) -> dict[str, object]:
        """Settings fields for fcmon on this node (pass to Settings(...) or make_app)."""
        return {"index": "elasticsearch", "elasticsearch_url": self.url, "elasticsearch_username": SERVICE_USER,
                "elasticsearch_password": self.passwords[SERVICE_USER], **overrides}

    def env(self, **overrides) -> dict[str, str]:
        return {f"FCMON_{k.upper()}": str(v) for k, v in self.settings(**overrides).items()}


def _exported_stack() -> EsNode | None:
    directory = os.environ.get("FCMON_STACK_DIR")
    if not directory or not (Path(directory) / "stack.json").is_file():
        return None
    state = StackState.load(Path(directory))
    node = Elasticsearch(Path(state.dir) / "elasticsearch", port=state.elasticsearch["port"],
                         passwords=state.elasticsearch["passwords"])
    try:
        return EsNode(node.url, node.passwords) if node.healthy() else None
    except OSError:
        return None


@pytest.fixture(scope="session")
def es_node() -> Iterator[EsNode]:
    """One Elasticsearch for the test session; each test names its own indices (fcmon-test-*) and wipes them."""
    exported = _exported_stack()
    if exported is not None:
        yield exported
        return
    require_java_and_maven()
    home = stack_dir("fcmon-es-")
    node = Elasticsearch(home)
    try:
        node.start()
    except StackError as exc:
        shutil.rmtree(home, ignore_errors=True)
        unavailable(str(exc))
    yield EsNode(node.url, node.passwords)
    node.stop()
    shutil.rmtree(home, ignore_errors=True)
