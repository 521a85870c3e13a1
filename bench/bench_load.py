"""Load: concurrent searches on the web console, the API and the Kibana gateway while the worker ingests, then one
audit entry per request made.

    .venv/bin/python bench/bench_load.py [--requests 300] [--clients 6] [--seconds 120] [--backlog 3000] [--json FILE]

Everything runs as real processes on 127.0.0.1: Elasticsearch (the exported stack of `eval "$(scripts/stack up)"`
if one answers, else one started here and stopped at the end), `fcmon serve`, `fcmon gateway` and `fcmon work`
(ingesting --backlog items from the local bus into Elasticsearch while the searches run), all on one data
directory. This process is the clients: --clients threads, each sending in turn a console search (signed-in session,
the form's POST with its CSRF token), an API search (GET /api/search, HTTP Basic) and a gateway search (POST
/<records alias>/_search as Kibana sends it), until --requests per interface are sent or --seconds pass. Reports
per interface: requests, throughput, p50/p95 latency, errors (anything but a 200); then reads the audit log: each
interface's `query` entries must equal the requests sent to it, each with its `query.result`, and `fcmon audit
verify` ok. Exit status 1 when not.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_index import percentile  # noqa: E402

from pipeline.models import utcnow  # noqa: E402
from pipeline.passwords import hash_password  # noqa: E402
from pipeline.stack import free_port  # noqa: E402
from tests.datadirs import FCMON, make_app  # noqa: E402
from tests.factories_pipeline import make_tasking  # noqa: E402
from tests.factories_web import csrf_of  # noqa: E402
from tests.faults import Expected, clean_env, publish, round_items  # noqa: E402

PASSWORD = "load-test-password-1"
TERMS = ["converter", "converters", "sale", "number", "catalytic", "cash"]
INTERFACES = {"console": "web", "api": "api", "gateway": "kibana"}  # what each writes as the QueryEvent's interface


def say(text: str) -> None:
    print(f"bench_load: {text}", file=sys.stderr, flush=True)


def elasticsearch(stack: list) -> object:
    from pipeline.stack.elasticsearch import Elasticsearch
    from tests import stack as test_stack
    node = test_stack._exported_stack()
    if node is not None:
        return node
    home = test_stack.stack_dir("fcmon-bench-load-")
    es = Elasticsearch(home)
    say("starting Elasticsearch")
    es.start()
    stack.append(lambda: (es.stop(), shutil.rmtree(home, ignore_errors=True)))
    return test_stack.EsNode(es.url, es.passwords)


def wait_listening(proc: subprocess.Popen, log: Path, port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench_load: a server exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=2).connect()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"bench_load: nothing listening on {port} after {timeout} s: {log.read_text()[-2000:]}")


class Client:
    """One simulated user, with a kept-alive connection to each server."""

    def __init__(self, console: int, gateway: int, alias: str):
        self.console = http.client.HTTPConnection("127.0.0.1", console, timeout=60)
        self.api = http.client.HTTPConnection("127.0.0.1", console, timeout=60)
        self.gateway = http.client.HTTPConnection("127.0.0.1", gateway, timeout=60)
        self.alias = alias
        self.basic = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
        self.cookie = ""
        self.csrf = ""

    def _send(self, conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None,
              headers: dict[str, str]) -> tuple[int, bytes, http.client.HTTPResponse]:
        conn.request(method, path, body=body, headers=headers)
        answer = conn.getresponse()
        return answer.status, answer.read(), answer

    def sign_in(self) -> None:
        """The console's sign-in (not counted: it is no search); the session's cookie and CSRF token kept."""
        form = urllib.parse.urlencode({"name": "alice", "password": PASSWORD}).encode()
        status, _, answer = self._send(self.console, "POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded"})
        cookies = [h.split(";", 1)[0] for k, h in answer.getheaders() if k.lower() == "set-cookie"]
        self.cookie = "; ".join(cookies)
        assert status in (302, 303) and self.cookie, f"sign-in answered {status}"
        status, page, _ = self._send(self.console, "GET", "/", None, {"Cookie": self.cookie})
        self.csrf = csrf_of(page.decode())

    def search(self, interface: str, term: str) -> int:
        if interface == "console":
            form = urllib.parse.urlencode({"csrf": self.csrf, "tasking": "T-1", "q": term}).encode()
            return self._send(self.console, "POST", "/search", form, {
                "Cookie": self.cookie, "Content-Type": "application/x-www-form-urlencoded"})[0]
        if interface == "api":
            query = urllib.parse.urlencode({"tasking": "T-1", "q": term})
            return self._send(self.api, "GET", f"/api/search?{query}", None, {"Authorization": self.basic})[0]
        body = json.dumps({"size": 20, "query": {"bool": {"must": [{"query_string": {"query": term}}]}},
                           "track_total_hits": True}).encode()
        return self._send(self.gateway, "POST", f"/{self.alias}/_search", body, {
            "Authorization": self.basic, "X-Fcmon-Tasking": "T-1", "Content-Type": "application/json"})[0]


def drive(args: argparse.Namespace, console: int, gateway: int, alias: str) -> dict[str, dict]:
    """--clients threads, each cycling through the three interfaces, until --requests each or --seconds pass."""
    lock = threading.Lock()
    sent = Counter()
    latencies: dict[str, list[float]] = {name: [] for name in INTERFACES}
    errors: dict[str, Counter] = {name: Counter() for name in INTERFACES}
    deadline = time.monotonic() + args.seconds
    started = time.monotonic()

    def one_client(number: int) -> None:
        client = Client(console, gateway, alias)
        client.sign_in()
        turn = number
        while time.monotonic() < deadline:
            interface = list(INTERFACES)[turn % 3]
            turn += 1
            with lock:
                if all(sent[name] >= args.requests for name in INTERFACES):
                    return
                if sent[interface] >= args.requests:
                    continue
                sent[interface] += 1
            began = time.perf_counter()
            try:
                status = client.search(interface, TERMS[turn % len(TERMS)])
            except (OSError, http.client.HTTPException) as exc:
                status = type(exc).__name__
                client = Client(console, gateway, alias)  # a broken connection: a fresh one
                client.sign_in()
            elapsed = time.perf_counter() - began
            with lock:
                latencies[interface].append(elapsed)
                if status != 200:
                    errors[interface][str(status)] += 1

    threads = [threading.Thread(target=one_client, args=(n,)) for n in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    return {name: {"requests": sent[name], "seconds": round(wall, 1), "per_s": round(sent[name] / wall, 1),
                   "p50_ms": round(percentile(latencies[name], 50) * 1000, 1) if latencies[name] else None,
                   "p95_ms": round(percentile(latencies[name], 95) * 1000, 1) if latencies[name] else None,
                   "errors": dict(errors[name])} for name in INTERFACES}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="searches per interface (the bound in count)")
    parser.add_argument("--clients", type=int, default=6, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=120, help="the bound in time")
    parser.add_argument("--backlog", type=int, default=3000, help="items the worker ingests meanwhile")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    cleanup: list = []
    procs: list[subprocess.Popen] = []
    scratch = Path(tempfile.mkdtemp(prefix="fcmon-bench-load-", dir="/tmp"))
    try:
        node = elasticsearch(cleanup)
        alias = f"fcmon-load-{uuid.uuid4().hex[:8]}"
        settings = node.settings(elasticsearch_records_alias=alias)
        now = utcnow()
        root = scratch / "d"
        app = make_app(root, make_tasking(approved_at=now - timedelta(days=1), expires_at=now + timedelta(days=30)), **settings)
        for name, role in (("fcmon", "admin"), ("kibana_system", "admin")):  # the gateway's own accounts
            app.state.add_user(name, role)
        for name in ("alice", "fcmon", "kibana_system"):
            app.state.set_password_hash(name, hash_password(PASSWORD))
        expected = Expected()
        first = round_items(0, 200, expected)  # something to find from the first search on
        publish(app.bus, first)
        env = clean_env({"FCMON_DATA_DIR": str(root), "FCMON_WORK_BATCH_SIZE": "50",
                         **{k: str(v) for k, v in node.env(elasticsearch_records_alias=alias).items()}})
        subprocess.run([*FCMON, "work", "--until-idle"], env=env, check=True, capture_output=True, timeout=300)
        publish(app.bus, round_items(1, args.backlog, expected))
        app.close()
        console_port, gateway_port = free_port(), free_port()
        logs = {name: scratch / f"{name}.log" for name in ("serve", "gateway", "work")}
        commands = {"serve": ["serve", "--listen", f"127.0.0.1:{console_port}"],
                    "gateway": ["gateway", "--listen", f"127.0.0.1:{gateway_port}", "--upstream", node.url],
                    "work": ["work"]}
        for name, command in commands.items():
            with logs[name].open("wb") as err:
                procs.append(subprocess.Popen([*FCMON, *command], env=env, stdout=subprocess.DEVNULL, stderr=err))
        wait_listening(procs[0], logs["serve"], console_port)
        wait_listening(procs[1], logs["gateway"], gateway_port)
        from elasticsearch import Elasticsearch as EsClient
        es = EsClient(node.url, basic_auth=node.service_auth)
        indexed_before = es.count(index=alias)["count"]
        say(f"{args.clients} clients, up to {args.requests} searches per interface or {args.seconds:.0f} s; "
            f"the worker ingesting {args.backlog} items ({indexed_before} indexed)")
        figures = drive(args, console_port, gateway_port, alias)
        es.indices.refresh(index=alias)
        indexed_after = es.count(index=alias)["count"]
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
        from pipeline.app import App
        from pipeline.settings import Settings
        audited = App(Settings(data_dir=root)).audit
        queries = Counter(e.payload.get("interface") for e in audited.entries(["query"]))
        results = sum(1 for _ in audited.entries(["query.result"]))
        refused = sum(1 for _ in audited.entries(["query.refused"]))
        verify = subprocess.run([*FCMON, "--as", "sam", "audit", "verify", "--json"], env=env, capture_output=True, text=True)
        problems = []
        for name, interface in INTERFACES.items():
            if queries[interface] != figures[name]["requests"]:
                problems.append(f"{name}: {figures[name]['requests']} requests, {queries[interface]} query entries")
        if results != sum(queries.values()):
            problems.append(f"{sum(queries.values())} query entries, {results} query.result entries")
        if verify.returncode != 0 or not json.loads(verify.stdout).get("ok"):
            problems.append(f"audit verify: {verify.stdout} {verify.stderr}")
        print(f"{'interface':<9} {'requests':>8} {'per s':>6} {'p50 ms':>7} {'p95 ms':>7} {'errors':>7} {'audited':>7}")
        for name, f in figures.items():
            print(f"{name:<9} {f['requests']:>8} {f['per_s']:>6} {f['p50_ms']:>7} {f['p95_ms']:>7} "
                  f"{sum(f['errors'].values()):>7} {queries[INTERFACES[name]]:>7}  {f['errors'] or ''}")
        print(f"worker: {indexed_before} -> {indexed_after} records while the searches ran; audit: "
              f"{sum(queries.values())} queries, {results} results, {refused} refused; verify "
              f"{'ok' if verify.returncode == 0 else 'FAILED'}; {'ok' if not problems else 'FAILED: ' + '; '.join(problems)}")
        if args.json:
            args.json.write_text(json.dumps({"figures": figures, "audited": dict(queries), "results": results,
                                             "indexed": [indexed_before, indexed_after], "problems": problems}, indent=2))
        return 1 if problems or any(f["errors"] for f in figures.values()) else 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for step in reversed(cleanup):
            step()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
