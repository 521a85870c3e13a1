"""`scripts/stack`: the real Kafka and Elasticsearch, one set of versions, clear errors when something is missing."""
from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from pipeline.stack import REPO, alive, versions
from pipeline.stack.kafka import metadata_answers
from tests.stack import require_java_and_maven, stack_dir

STACK = REPO / "scripts" / "stack"
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]


def image_tag(service: str) -> str:
    return COMPOSE[service]["image"].rsplit(":", 1)[1]


def test_compose_runs_the_versions_the_stack_and_the_tests_run():
    v = versions()
    assert image_tag("kafka") == v["KAFKA_VERSION"]
    assert image_tag("elasticsearch") == image_tag("elasticsearch-setup") == image_tag("kibana") == v["ELASTIC_VERSION"]
    assert "VERSION" not in (REPO / ".env.example").read_text()  # no second place to set them


def test_the_python_clients_speak_to_these_servers():
    v = versions()
    assert version("elasticsearch").split(".")[0] == v["ELASTIC_VERSION"].split(".")[0]  # compatible-with = major
    assert int(version("kafka-python").split(".")[0]) >= 3  # tested by its authors against Kafka 4.x


def tool_path(tmp_path: Path, *tools: str) -> str:
    """A PATH holding only these tools (and what the script itself needs)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("dirname", *tools):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def run_stack(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FCMON_", "JAVA_HOME"))}
    return subprocess.run([str(STACK), *args], capture_output=True, text=True, timeout=timeout,
                          env={**base, "PYTHON": sys.executable, **env})


def test_without_java_one_line_says_what_to_install(tmp_path):
    done = run_stack("up", "--dir", str(tmp_path / "s"), env={"PATH": tool_path(tmp_path)})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "stack: Java 17 or newer is needed to run Kafka and Elasticsearch: apt-get install openjdk-17-jre-headless "
        "(or set JAVA_HOME)"]


def test_without_maven_one_line_says_what_to_install(tmp_path):
    require_java_and_maven()
    env = {"PATH": tool_path(tmp_path, "java"), "FCMON_STACK_CACHE": str(tmp_path / "cache")}
    done = run_stack("up", "--dir", str(tmp_path / "s"), env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1] == (
        "stack: Maven is needed to fetch Kafka and Elasticsearch from Maven Central: apt-get install maven")


def test_an_unreachable_registry_is_one_line_naming_the_artifact(tmp_path):
    """Maven pointed at a closed loopback port instead of Maven Central, with an empty local repository."""
    require_java_and_maven()
    from tests.broker import free_port
    cache = tmp_path / "cache"
    project = cache / f"kafka-{versions()['KAFKA_VERSION']}"
    (project / ".mvn").mkdir(parents=True)
    (tmp_path / "settings.xml").write_text(
        "<settings><mirrors><mirror><id>nowhere</id><mirrorOf>*</mirrorOf>"
        f"<url>http://127.0.0.1:{free_port()}/maven2</url></mirror></mirrors></settings>")
    (project / ".mvn" / "maven.config").write_text(f"-s {tmp_path / 'settings.xml'} "
                                                   f"-Dmaven.repo.local={tmp_path / 'empty-repo'}")
    done = run_stack("up", "--dir", str(tmp_path / "s"), env={"PATH": os.environ["PATH"], "FCMON_STACK_CACHE": str(cache)})
    assert done.returncode == 2 and done.stdout == ""
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"stack: could not fetch org.apache.kafka:kafka_2.13:{versions()['KAFKA_VERSION']} from "
                           "Maven Central") and "is the registry reachable?" in last
    assert (project / "maven.log").is_file()


def es_status(url: str, path: str, auth: tuple[str, str] | None, method: str = "GET") -> int:
    headers = {"Authorization": "Basic " + base64.b64encode(":".join(auth).encode()).decode()} if auth else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url + path, method=method, headers=headers), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture(scope="module")
def stack_up():
    require_java_and_maven()
    directory = stack_dir("fcmon-stack-test-")
    env = {"PATH": os.environ["PATH"]}
    up = run_stack("up", "--dir", str(directory), env=env)
    assert up.returncode == 0, up.stderr
    yield directory, env, up
    run_stack("down", "--dir", str(directory), env=env)
    shutil.rmtree(directory, ignore_errors=True)


def exports(out: str) -> dict[str, str]:
    pairs = [shlex.split(line)[1].split("=", 1) for line in out.splitlines()]
    assert all(line.startswith("export FCMON_") for line in out.splitlines())
    return dict(pairs)


def test_up_prints_the_exports_that_point_fcmon_at_both(stack_up):
    directory, _, up = stack_up
    found = exports(up.stdout)
    assert found["FCMON_BUS"] == "kafka" and found["FCMON_INDEX"] == "elasticsearch"
    assert found["FCMON_STACK_DIR"] == str(directory)
    host, port = found["FCMON_KAFKA_BOOTSTRAP_SERVERS"].split(":")
    assert host == "127.0.0.1" and metadata_answers(int(port))
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", found["FCMON_ELASTICSEARCH_URL"])
    assert json.loads((directory / "stack.json").read_text())["kafka"]["bootstrap"] == found["FCMON_KAFKA_BOOTSTRAP_SERVERS"]
    assert (directory / "stack.json").stat().st_mode & 0o077 == 0  # it holds the passwords


def test_elasticsearch_has_security_on_and_fcmon_reaches_only_its_own_indices(stack_up):
    found = exports(stack_up[2].stdout)
    url, service = found["FCMON_ELASTICSEARCH_URL"], (found["FCMON_ELASTICSEARCH_USERNAME"],
                                                      found["FCMON_ELASTICSEARCH_PASSWORD"])
    admin = tuple(found["FCMON_STACK_ELASTICSEARCH_ADMIN"].split(":", 1))
    assert es_status(url, "/_cluster/health", None) == 401
    assert es_status(url, "/_cluster/health", (service[0], "wrong")) == 401
    assert es_status(url, "/fcmon-stack-check", service, "PUT") == 200
    assert es_status(url, "/someone-else", service, "PUT") == 403
    assert es_status(url, "/someone-else", admin, "PUT") == 200


def test_status_says_what_runs_where_and_down_stops_both_keeping_the_data(stack_up):
    directory, env, up = stack_up
    found = exports(up.stdout)
    status = run_stack("status", "--dir", str(directory), env=env)
    assert status.returncode == 0 and re.search(r"^kafka +up +127\.0\.0\.1:\d+ +pid \d+", status.stdout, re.M)
    assert re.search(r"^elasticsearch +up +http://127\.0\.0\.1:\d+", status.stdout, re.M)
    pids = [json.loads((directory / "stack.json").read_text())[s]["pid"] for s in ("kafka", "elasticsearch")]

    down = run_stack("down", "--dir", str(directory), env=env)
    assert down.returncode == 0 and not any(alive(pid) for pid in pids)
    stopped = run_stack("status", "--dir", str(directory), env=env)
    assert stopped.returncode == 1 and "kafka          down" in stopped.stdout

    again = run_stack("up", "--dir", str(directory), env=env)
    assert again.returncode == 0 and exports(again.stdout) == found  # same ports and passwords
    service = (found["FCMON_ELASTICSEARCH_USERNAME"], found["FCMON_ELASTICSEARCH_PASSWORD"])
    assert es_status(found["FCMON_ELASTICSEARCH_URL"], "/fcmon-stack-check", service, "HEAD") == 200  # data kept


def processes_under(directory: Path) -> list[int]:
    """PIDs whose command line names `directory` (the servers' configs and data live there)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(directory).encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_a_sigterm_during_up_leaves_no_server_running():
    require_java_and_maven()
    directory = stack_dir("fcmon-stack-interrupted-")
    starting = subprocess.Popen([str(STACK), "up", "--dir", str(directory)], env={"PATH": os.environ["PATH"]},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not ((directory / "kafka" / "stdout.log").exists()
                                                    and set(processes_under(directory)) - {starting.pid}):
            time.sleep(0.2)  # Kafka launched (Elasticsearch being set up or launched), neither yet answering
        assert starting.poll() is None, starting.communicate()
        starting.terminate()
        _, err = starting.communicate(timeout=180)
        assert starting.returncode == 130, err
        assert processes_under(directory) == [] and not (directory / "stack.json").exists()
    finally:
        for pid in processes_under(directory):
            os.kill(pid, 9)
        shutil.rmtree(directory, ignore_errors=True)
