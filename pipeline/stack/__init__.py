"""The real systems on one machine without Docker: Apache Kafka (KRaft) and Elasticsearch from Maven Central.

`scripts/stack up|down|status` is the command; the tests start the same stack through `start` (tests/stack.py).
Standard library only, so it runs before fcmon's virtualenv exists. Versions: config/versions.env.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
VERSIONS_FILE = REPO / "config" / "versions.env"


class StackError(Exception):
    """One line for the operator: what failed and what to do next."""


def versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def cache_dir() -> Path:
    """Downloads, kept across stacks: FCMON_STACK_CACHE, else ~/.cache/fcmon-stack."""
    return Path(os.environ.get("FCMON_STACK_CACHE") or Path.home() / ".cache" / "fcmon-stack")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def java_home(major: int = 17) -> Path:
    """A JDK of at least `major`: JAVA_HOME, else the `java` on PATH."""
    candidates = [Path(os.environ["JAVA_HOME"]) / "bin" / "java"] if os.environ.get("JAVA_HOME") else []
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path).resolve())
    for java in candidates:
        if java.is_file() and _java_major(java) >= major:
            return java.parent.parent
    raise StackError(f"Java {major} or newer is needed to run Kafka and Elasticsearch: "
                     f"apt-get install openjdk-{major}-jre-headless (or set JAVA_HOME)")


def _java_major(java: Path) -> int:
    out = subprocess.run([str(java), "-XshowSettings:properties", "-version"], capture_output=True, text=True).stderr
    for line in out.splitlines():
        if "java.specification.version" in line:
            version = line.split("=")[1].strip()
            return int(version.split(".")[1] if version.startswith("1.") else version.split(".")[0])
    return 0


def maven(*args: str, cwd: Path, what: str) -> None:
    """Run Maven quietly; a failure names the artifact and the likely cause."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven is needed to fetch Kafka and Elasticsearch from Maven Central: apt-get install maven")
    log = cwd / "maven.log"
    with log.open("w") as out:
        done = subprocess.run([mvn, "-B", "-q", *args], cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        raise StackError(f"could not fetch {what} from Maven Central (mvn exited {done.returncode}; is the registry "
                         f"reachable? its output: {log})")


def wait_for(check, what: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"{what} exited with {proc.returncode} while starting; its log: {log}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise StackError(f"{what} did not answer within {timeout:.0f} s; its log: {log}")


def stop_pid(pid: int | None, timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL after `timeout`; a PID already gone is fine."""
    if not pid or not alive(pid):
        return
    os.kill(pid, 15)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.1)
    os.kill(pid, 9)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own exited child) is not running
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


@dataclass
class StackState:
    """What `up` started, kept in <dir>/stack.json (mode 0600: it holds the passwords)."""
    dir: str
    kafka: dict = field(default_factory=dict)
    elasticsearch: dict = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return Path(self.dir) / "stack.json"

    def save(self) -> None:
        self.path.write_text(json.dumps(asdict(self), indent=2))
        self.path.chmod(0o600)

    @classmethod
    def load(cls, directory: Path) -> StackState:
        path = directory / "stack.json"
        if not path.is_file():
            raise StackError(f"no stack in {directory} (start one with: scripts/stack up)")
        return cls(**json.loads(path.read_text()))

    def exports(self) -> dict[str, str]:
        es, kafka = self.elasticsearch, self.kafka
        return {
            "FCMON_STACK_DIR": self.dir,
            "FCMON_BUS": "kafka",
            "FCMON_KAFKA_BOOTSTRAP_SERVERS": kafka["bootstrap"],
            "FCMON_INDEX": "elasticsearch",
            "FCMON_ELASTICSEARCH_URL": es["url"],
            "FCMON_ELASTICSEARCH_USERNAME": es["service_user"],
            "FCMON_ELASTICSEARCH_PASSWORD": es["service_password"],
            "FCMON_STACK_ELASTICSEARCH_ADMIN": f"{es['admin_user']}:{es['admin_password']}",
        }
