"""A single-node Elasticsearch (security on, TLS off, loopback only) from Maven Central's integ-test-zip.

That distribution is the server with transport-netty4, x-pack core and x-pack security, and no JDK. It refuses to
run as root, so as root it runs as the system user `fcmon-es`, which owns the node's folder.
"""
from __future__ import annotations

import base64
import os
import pwd
import secrets
import shutil
import subprocess
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from pipeline.stack import REPO, StackError, cache_dir, free_port, java_home, maven, versions, wait_for

SYSTEM_USER = "fcmon-es"
ADMIN_USER = "fcmon-admin"
SERVICE_USER = "fcmon"

ROLES = REPO / "config" / "elasticsearch" / "roles.yml"  # the same file docker-compose.yml mounts

CONFIG = """cluster.name: fcmon-stack
node.name: fcmon-1
discovery.type: single-node
network.host: 127.0.0.1
http.port: {port}
transport.port: {transport_port}
path.data: {home}/data
path.logs: {home}/logs
xpack.security.enabled: true
xpack.security.http.ssl.enabled: false
xpack.security.transport.ssl.enabled: false
xpack.security.enrollment.enabled: false
# A full disk elsewhere on a developer's machine must not turn the test indices read-only.
cluster.routing.allocation.disk.threshold_enabled: false
# Tests wipe their own indices by pattern (fcmon-test-*).
action.destructive_requires_name: false
"""


def distribution() -> Path:
    """The server zip, fetched once into the cache."""
    version = versions()["ELASTIC_VERSION"]
    target = cache_dir() / f"elasticsearch-{version}.zip"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        maven("dependency:copy", f"-Dartifact=org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip",
              f"-DoutputDirectory={target.parent}", cwd=target.parent,
              what=f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}")
    return target


def unpack(archive: Path, into: Path) -> None:
    """Unzip keeping the executable bits (zipfile alone drops them), without the top folder."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            relative = Path(*Path(info.filename).parts[1:])
            if not relative.parts:
                continue
            dest = into / relative
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, dest.open("wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                dest.chmod(mode)


class Elasticsearch:
    """One node in `home`; users and passwords are made by `configure` (file realm)."""

    def __init__(self, home: Path, port: int | None = None, passwords: dict[str, str] | None = None):
        self.home = home
        self.port = port or free_port()
        self.transport_port = free_port()
        self.passwords = passwords or {ADMIN_USER: secrets.token_urlsafe(18), SERVICE_USER: secrets.token_urlsafe(18)}
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.home / "logs" / "fcmon-stack.log"

    @property
    def server_pid(self) -> int | None:
        pidfile = self.home / "server.pid"
        return int(pidfile.read_text()) if pidfile.is_file() and pidfile.read_text().strip() else None

    def env(self) -> dict[str, str]:
        return {**os.environ, "ES_JAVA_HOME": str(java_home(17)), "ES_PATH_CONF": str(self.home / "config"),
                "ES_JAVA_OPTS": "-Xms512m -Xmx512m", "ES_TMPDIR": str(self.home / "tmp")}

    def configure(self) -> None:
        if not (self.home / "bin" / "elasticsearch").is_file():
            unpack(distribution(), self.home)
        for folder in ("data", "logs", "tmp"):
            (self.home / folder).mkdir(parents=True, exist_ok=True)
        config = self.home / "config"
        (config / "elasticsearch.yml").write_text(CONFIG.format(port=self.port, transport_port=self.transport_port,
                                                                home=self.home))
        (config / "roles.yml").write_text(ROLES.read_text())
        (config / "users").write_text("")
        (config / "users_roles").write_text("")
        for user, role in ((ADMIN_USER, "superuser"), (SERVICE_USER, "fcmon_service")):
            added = subprocess.run([str(self.home / "bin" / "elasticsearch-users"), "useradd", user,
                                    "-p", self.passwords[user], "-r", role], env=self.env(), capture_output=True,
                                   text=True)
            if added.returncode:
                raise StackError(f"Elasticsearch user {user} could not be made: {added.stdout.strip()[-300:]}")
        if os.geteuid() == 0:
            self._hand_to_system_user()

    def _hand_to_system_user(self) -> None:
        """Elasticsearch refuses root: the node's folder goes to `fcmon-es`, which must be able to reach it."""
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
                           check=True)
        for parent in self.home.parents:
            if not parent.stat().st_mode & 0o001:
                raise StackError(f"{parent} is closed to other users, so Elasticsearch (user {SYSTEM_USER}) cannot "
                                 f"reach {self.home}: choose a stack folder under an open one (--dir /tmp/fcmon-stack)")
        subprocess.run(["chown", "-R", f"{SYSTEM_USER}:{SYSTEM_USER}", str(self.home)], check=True)

    def start(self, timeout: float = 180) -> Elasticsearch:
        self.configure()
        as_user = {"user": SYSTEM_USER, "group": SYSTEM_USER} if os.geteuid() == 0 else {}
        with open(os.devnull, "wb") as quiet:
            self.proc = subprocess.Popen([str(self.home / "bin" / "elasticsearch"), "-p", str(self.home / "server.pid")],
                                         env=self.env(), stdout=quiet, stderr=subprocess.STDOUT,
                                         start_new_session=True, **as_user)
        wait_for(self.healthy, f"Elasticsearch on {self.url}", timeout, self.proc, self.log)
        return self

    def request(self, method: str, path: str, user: str = ADMIN_USER, timeout: float = 5) -> int:
        token = base64.b64encode(f"{user}:{self.passwords[user]}".encode()).decode()
        req = urllib.request.Request(self.url + path, method=method, headers={"Authorization": f"Basic {token}"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as answer:
                return answer.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def healthy(self) -> bool:
        return self.request("GET", "/_cluster/health?wait_for_status=yellow&timeout=1s") == 200

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
