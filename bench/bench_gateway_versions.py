"""The gateway's added latency over Elasticsearch, two versions of it in one run: the old `http.server` gateway
against the uvicorn one, both in front of the same node and the same records.

    .venv/bin/python bench/bench_gateway_versions.py [--old REV] [--records 20000] [--queries 300]

--old defaults to the first parent of the merge that brought the gateway onto uvicorn (15c4d82^1, the last
http.server gateway); the new one is this working tree. The old tree is unpacked with `git archive` into a temporary
folder (no worktree is registered). Each gateway runs in its own process, started from its own tree (it prints its
port, as Scrapy's mock servers do), with its own data directory holding the same users and taskings. The queries
are bench_stack.py's: bench_index.py's 1-3 term queries with a range and a filter, top 20 with highlights, POSTed
as Kibana sends them on kept-alive connections; each query goes straight to Elasticsearch and through each
gateway, the order rotated per query; the first 30 warm the caches. Uses the stack of FCMON_STACK_DIR when one
runs there, else starts one Elasticsearch under /tmp and stops it at the end.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from datetime import timedelta
from http.client import HTTPConnection
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_index import TASKINGS, Corpus, percentile  # noqa: E402

from pipeline.index.elasticsearch import ElasticsearchIndex, es_search_body  # noqa: E402
from pipeline.stack import StackState  # noqa: E402
from tests.stack import EsNode  # noqa: E402

OLD_DEFAULT = "15c4d82^1"
USER, PASSWORD = "bench.analyst", "bench-password"

# Run inside each version's tree (cwd and sys.path[0]): the same calls exist in both versions.
SERVE = r"""
import json, sys, threading
from datetime import timedelta
from pathlib import Path
import pipeline
from pipeline.gateway import Gateway, serve
from pipeline.models import Tasking, utcnow
from pipeline.passwords import hash_password
from tests.datadirs import make_app
cfg = json.loads(sys.argv[1])
app = make_app(Path(cfg["data"]), index="elasticsearch", elasticsearch_url=cfg["url"],
               elasticsearch_username=cfg["auth"][0], elasticsearch_password=cfg["auth"][1],
               elasticsearch_records_alias=cfg["alias"])
app.state.add_user(cfg["user"], "analyst")
app.state.set_password_hash(cfg["user"], hash_password(cfg["password"]))
for tasking_id in cfg["taskings"]:
    app.state.put_tasking(Tasking(id=tasking_id, kind="information_gathering", requested_by=cfg["user"], approved_by="sam",
                                  approved_at=utcnow() - timedelta(days=1), expires_at=utcnow() + timedelta(days=30)))
gateway = Gateway(app.state, app.audit, cfg["url"], records_alias=cfg["alias"], service_account="fcmon",
                  upstream_auth=tuple(cfg["auth"]))
server = serve(gateway, "127.0.0.1", 0)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(json.dumps({"port": server.server_address[1], "pipeline": pipeline.__file__}), flush=True)
sys.stdin.read()  # until the bench closes our stdin
print(json.dumps({"audit_ok": app.audit.verify().ok}), flush=True)
"""


def say(text: str) -> None:
    print(f"bench_gateway_versions: {text}", file=sys.stderr, flush=True)


def unpack(rev: str, into: Path) -> str:
    """The tree of `rev` (as `git archive` gives it) in `into`; its full commit id."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                            check=True, capture_output=True, text=True).stdout.strip()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return commit


def the_node() -> tuple[EsNode, object | None]:
    """The exported stack's node if one runs, else one started here (returned too, to be stopped)."""
    exported = os.environ.get("FCMON_STACK_DIR")
    if exported and (Path(exported) / "stack.json").is_file():
        state = StackState.load(Path(exported))
        return EsNode(state.elasticsearch["url"], state.elasticsearch["passwords"]), None
    from pipeline.stack import java_home
    from pipeline.stack.elasticsearch import Elasticsearch, distribution
    java_home(17)
    distribution()
    directory = Path(tempfile.mkdtemp(prefix="fcmon-bench-gwv-", dir="/tmp"))
    directory.chmod(0o755)  # Elasticsearch's system user must reach its folder inside
    es = Elasticsearch(directory / "elasticsearch").start()
    return EsNode(es.url, es.passwords), es


def start_gateway(tree: Path, cfg: dict) -> tuple[subprocess.Popen, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FCMON_")} | {"PYTHONPATH": str(tree)}
    proc = subprocess.Popen([sys.executable, "-c", SERVE, json.dumps(cfg)], cwd=tree, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    started = json.loads(proc.stdout.readline())
    if not started["pipeline"].startswith(str(tree)):
        raise SystemExit(f"the gateway of {tree} imported {started['pipeline']}: not its own tree")
    return proc, started["port"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", default=OLD_DEFAULT, help=f"the old gateway's revision (default {OLD_DEFAULT})")
    parser.add_argument("--records", type=int, default=20_000, help="records searched (default 20,000)")
    parser.add_argument("--queries", type=int, default=300, help="queries timed each way (default 300)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fcmon-bench-gwv-data-"))
    old_tree = work / "old"
    old_commit = unpack(args.old, old_tree)
    new_commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True).stdout.strip()
    say(f"old gateway: {old_commit[:10]} ({args.old}); new: this tree (HEAD {new_commit[:10]})")
    node, started_here = the_node()
    alias = f"fcmon-bench-{uuid.uuid4().hex[:8]}"
    procs: list[subprocess.Popen] = []
    try:
        corpus, index = Corpus(), ElasticsearchIndex(node.client(request_timeout=120), alias, refresh=False)
        index.ensure()
        for start in range(0, args.records, 5000):
            index.upsert(corpus.records(start, min(5000, args.records - start)))
        client = node.client(request_timeout=60)
        client.indices.refresh(index=alias)
        say(f"{args.records:,} records in {alias}")
        ports = {}
        for name, tree in (("old gateway", old_tree), ("new gateway", ROOT)):
            cfg = {"data": str(work / name.replace(" ", "-")), "url": node.url, "auth": list(node.service_auth),
                   "alias": alias, "user": USER, "password": PASSWORD, "taskings": list(TASKINGS)}
            proc, ports[name] = start_gateway(tree, cfg)
            procs.append(proc)
        service = "Basic " + base64.b64encode(":".join(node.service_auth).encode()).decode()
        analyst = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        ways = {"direct": (HTTPConnection(node.url.removeprefix("http://"), timeout=30), service),
                **{name: (HTTPConnection(f"127.0.0.1:{port}", timeout=30), analyst) for name, port in ports.items()}}
        kinds = ["common", "mid", "rare"]
        asked = [corpus.query(kinds[n % 3]) for n in range(args.queries + 30)]
        times: dict[str, list[float]] = {name: [] for name in ways}
        for n, query in enumerate(asked):
            order = list(ways)[n % 3:] + list(ways)[:n % 3]
            body = json.dumps(es_search_body(query))
            for name in order:
                connection, auth = ways[name]
                began = time.perf_counter()
                connection.request("POST", f"/{alias}/_search", body=body, headers={
                    "Authorization": auth, "Content-Type": "application/json", "X-Fcmon-Tasking": query.tasking_id})
                answer = connection.getresponse()
                payload = answer.read()
                elapsed = (time.perf_counter() - began) * 1000
                assert answer.status == 200, (name, payload[:300])
                if n >= 30:
                    times[name].append(elapsed)
        for proc in procs:
            out, _ = proc.communicate("", timeout=30)
            assert json.loads(out.strip().splitlines()[-1])["audit_ok"], "a gateway's audit log does not verify"
        procs.clear()
        client.indices.delete(index=f"{alias}*")
    finally:
        for proc in procs:
            proc.kill()
        if started_here is not None:
            started_here.stop()
    stats = {name: (statistics.fmean(v), percentile(v, 50), percentile(v, 95)) for name, v in times.items()}
    print(f"## The gateway's added latency, old ({old_commit[:10]}, http.server) and new (uvicorn), same run\n")
    print(f"{args.records:,} records, {args.queries} queries each way, one Elasticsearch node on this machine\n")
    print("| way | mean | p50 | p95 | mean / direct | p95 / direct |\n|---|---|---|---|---|---|")
    direct_mean, _, direct_p95 = stats["direct"]
    for name, (mean, p50, p95) in stats.items():
        print(f"| {name} | {mean:.2f} ms | {p50:.2f} ms | {p95:.2f} ms | {mean / direct_mean:.2f} | {p95 / direct_p95:.2f} |")


if __name__ == "__main__":
    main()
