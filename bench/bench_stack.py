"""Benchmark fcmon on the real stack (Apache Kafka, Elasticsearch), each figure a ratio to a baseline in the same run.

    .venv/bin/python bench/bench_stack.py [--n 20000] [--records 100000] [--queries 300] [--backlog 1000000]

Uses the stack of FCMON_STACK_DIR when one runs there (`eval "$(scripts/stack up)"`), else starts one under /tmp and
stops it at the end. Measures:
- worker: N ~1.2 KB items (bench_bus.py's, every one passing the guards) produced to fcm.collected, then the Worker
  with the default guard chain, in process, from Kafka into Elasticsearch until idle, from its first batch taken to
  its last stored; baseline: `helpers.bulk` of the same documents (read back from the worker's index) into a fresh
  index of the same node, chunks of the worker's batch size, then one refresh; the guard chain's time inside the
  worker is summed (bench_guards.TimedChain), so the worker's own cost over the bulk shows apart from the rules';
- search: --records synthetic posts (bench_index.py's corpus, four taskings) in an alias of their own; 1-3 term
  queries with a range and a filter, top 20 with highlights, each sent four ways in turn: `audited_search` (what
  `fcmon search` runs: authorize, QueryEvent appended, query, QueryResult appended) against the same body sent
  with the same Elasticsearch client; and through a running gateway (`pipeline.gateway.serve`) as Kibana sends it,
  a kept-alive HTTP connection and the body as JSON, against the same request on the same kind of connection
  straight to Elasticsearch; p50/p95;
- memory: --backlog items waiting in fcm.collected, then one `fcmon work` process; its resident set sampled every
  0.5 s for --rss-seconds while it works through them (peak and items indexed meanwhile).
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.client import HTTPConnection
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_bus import TimedWorker, items, produce, tasking  # noqa: E402
from bench_guards import TimedChain  # noqa: E402
from bench_index import TASKINGS, Corpus, percentile  # noqa: E402
from elasticsearch import helpers  # noqa: E402

from pipeline.bus.kafka import KafkaBus  # noqa: E402
from pipeline.gateway import TASKING_HEADER, Gateway, serve  # noqa: E402
from pipeline.index.elasticsearch import ElasticsearchIndex, es_search_body  # noqa: E402
from pipeline.models import Tasking, utcnow  # noqa: E402
from pipeline.passwords import hash_password  # noqa: E402
from pipeline.search import audited_search  # noqa: E402
from pipeline.stack import StackState  # noqa: E402
from pipeline.stack.__main__ import down, up  # noqa: E402
from tests.datadirs import FCMON, make_app  # noqa: E402
from tests.stack import EsNode  # noqa: E402


def say(text: str) -> None:
    print(f"bench_stack: {text}", file=sys.stderr, flush=True)


def the_stack() -> tuple[StackState, bool]:
    """The exported stack if it answers, else a new one (started here, stopped at the end)."""
    exported = os.environ.get("FCMON_STACK_DIR")
    if exported and (Path(exported) / "stack.json").is_file():
        return up(Path(exported)), False
    directory = Path(tempfile.mkdtemp(prefix="fcmon-bench-stack-", dir="/tmp"))
    return up(directory), True


def worker_vs_bulk(node: EsNode, bootstrap: str, n: int, root: Path) -> dict:
    alias = f"fcmon-bench-{uuid.uuid4().hex[:8]}"
    settings = {"bus": "kafka", "kafka_bootstrap_servers": bootstrap, **node.settings(elasticsearch_records_alias=alias)}
    app = make_app(root / "worker", tasking(), **settings)
    produce(app.bus, items(n))
    chain = TimedChain.from_settings(app.settings)
    worker = TimedWorker(app.settings, app.bus, app.index, app.state, chain)
    stats = worker.run(until_idle=True)
    worker_s = worker.last_batch_stored_at - worker.first_batch_at
    client = node.client(request_timeout=120)
    docs = [{"_index": f"{alias}-bulk", "_id": hit["_id"], "_source": hit["_source"]}
            for hit in helpers.scan(client, index=alias, size=5000)]
    client.indices.create(index=f"{alias}-bulk", mappings=client.indices.get_mapping(index=alias)
                          .popitem()[1]["mappings"])
    began = time.perf_counter()
    helpers.bulk(client, docs, chunk_size=app.settings.work_batch_size, request_timeout=120)
    client.indices.refresh(index=f"{alias}-bulk")
    bulk_s = time.perf_counter() - began
    assert stats.indexed == n == len(docs), (stats.indexed, n, len(docs))
    client.indices.delete(index=f"{alias}*")
    app.close()
    return {"n": n, "worker": n / worker_s, "bulk": n / bulk_s, "chain_share": chain.seconds / worker_s,
            "worker_without_chain": n / (worker_s - chain.seconds)}


def search_three_ways(node: EsNode, records: int, queries: int, root: Path) -> dict:
    alias = f"fcmon-bench-{uuid.uuid4().hex[:8]}"
    app = make_app(root / "search", **node.settings(elasticsearch_records_alias=alias))
    app.state.add_user("bench.analyst", "analyst")
    app.state.set_password_hash("bench.analyst", hash_password("bench-password"))
    for tasking_id in TASKINGS:
        app.state.put_tasking(Tasking(id=tasking_id, kind="information_gathering", requested_by="bench.analyst",
                                      approved_by="sam", approved_at=utcnow() - timedelta(days=1),
                                      expires_at=utcnow() + timedelta(days=30)))
    corpus, index = Corpus(), ElasticsearchIndex(node.client(request_timeout=120), alias, refresh=False)
    index.ensure()
    for start in range(0, records, 5000):
        index.upsert(corpus.records(start, min(5000, records - start)))
        say(f"search corpus: {start + 5000:,} of {records:,}")
    client = node.client(request_timeout=60)
    client.indices.refresh(index=alias)
    gateway = Gateway(app.state, app.audit, node.url, records_alias=alias, service_account="fcmon",
                      upstream_auth=node.service_auth)
    server = serve(gateway, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    service = "Basic " + base64.b64encode(":".join(node.service_auth).encode()).decode()
    analyst = "Basic " + base64.b64encode(b"bench.analyst:bench-password").decode()
    es_host = node.url.removeprefix("http://")
    to_es, to_gateway = HTTPConnection(es_host, timeout=30), HTTPConnection(f"127.0.0.1:{server.server_address[1]}",
                                                                             timeout=30)
    user = app.state.user("bench.analyst")
    kinds = ["common", "mid", "rare"]
    asked = [corpus.query(kinds[n % 3]) for n in range(queries + 30)]
    times: dict[str, list[float]] = {"direct": [], "fcmon search": [], "direct HTTP": [], "gateway": []}

    def post(connection: HTTPConnection, auth: str, query) -> bytes:
        """Kibana's way: a kept-alive connection, the search body as JSON (the same client for both paths)."""
        connection.request("POST", f"/{alias}/_search", body=json.dumps(es_search_body(query)),
                           headers={"Authorization": auth, "Content-Type": "application/json",
                                    TASKING_HEADER: query.tasking_id})
        answer = connection.getresponse()
        payload = answer.read()
        assert answer.status == 200, payload[:300]
        return payload

    def direct(query):
        return client.search(index=alias, body=es_search_body(query))

    def audited(query):
        return audited_search(app.state, app.audit, app.index, user, query, interface="cli")

    ways = {"direct": direct, "fcmon search": audited, "direct HTTP": lambda q: post(to_es, service, q),
            "gateway": lambda q: post(to_gateway, analyst, q)}
    for n, query in enumerate(asked):
        order = list(ways)[n % 4:] + list(ways)[:n % 4]  # each way in each place of the order in turn
        for name in order:
            began = time.perf_counter()
            ways[name](query)
            if n >= 30:  # the first 30 warm the caches
                times[name].append((time.perf_counter() - began) * 1000)
    server.shutdown()
    assert app.audit.verify().ok
    client.indices.delete(index=f"{alias}*")
    app.close()
    return {"records": records, "queries": queries,
            **{name: (percentile(v, 50), percentile(v, 95)) for name, v in times.items()}}


def rss_under_backlog(node: EsNode, bootstrap: str, backlog: int, seconds: float, root: Path) -> dict:
    alias = f"fcmon-bench-{uuid.uuid4().hex[:8]}"
    settings = {"bus": "kafka", "kafka_bootstrap_servers": bootstrap, **node.settings(elasticsearch_records_alias=alias)}
    app = make_app(root / "backlog", tasking(), **settings)
    chunk = 50_000
    for start in range(0, backlog, chunk):
        produce(app.bus, items(min(chunk, backlog - start)))
        say(f"backlog: {start + chunk:,} of {backlog:,} produced")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FCMON_")}
    env.update({"FCMON_DATA_DIR": str(root / "backlog"), "FCMON_BUS": "kafka", "FCMON_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                **node.env(elasticsearch_records_alias=alias)})
    proc = subprocess.Popen([*FCMON, "work"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        status = Path(f"/proc/{proc.pid}/status").read_text()
        peak = max(peak, int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]))
        time.sleep(0.5)
    proc.terminate()
    proc.wait(timeout=60)
    client = node.client(request_timeout=60)
    client.indices.refresh(index=alias)
    done = client.count(index=alias)["count"]
    client.indices.delete(index=f"{alias}*")
    app.close()
    return {"backlog": backlog, "seconds": seconds, "peak_rss_mb": peak / 1024, "indexed": done}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="items through the worker (default 20,000)")
    parser.add_argument("--records", type=int, default=100_000, help="records searched (default 100,000)")
    parser.add_argument("--queries", type=int, default=300, help="queries timed each way (default 300)")
    parser.add_argument("--backlog", type=int, default=1_000_000, help="items waiting for the worker (default 1,000,000)")
    parser.add_argument("--rss-seconds", type=float, default=60, help="how long the worker's memory is sampled")
    args = parser.parse_args()
    state, started_here = the_stack()
    node = EsNode(state.elasticsearch["url"], state.elasticsearch["passwords"])
    bootstrap = state.kafka["bootstrap"]
    root = Path(tempfile.mkdtemp(prefix="fcmon-bench-stack-data-"))
    try:
        say("worker against helpers.bulk")
        w = worker_vs_bulk(node, bootstrap, args.n, root)
        say("search: direct, fcmon search, gateway")
        s = search_three_ways(node, args.records, args.queries, root)
        say(f"worker memory under a backlog of {args.backlog:,}")
        m = rss_under_backlog(node, bootstrap, args.backlog, args.rss_seconds, root)
    finally:
        if started_here:
            down(Path(state.dir))
    print(f"## fcmon on Apache Kafka and Elasticsearch (one node each, this machine)\n")
    print("| figure | measured |\n|---|---|")
    print(f"| worker, Kafka -> guards -> Elasticsearch, {w['n']:,} items | {w['worker']:,.0f} items/s |")
    print(f"| `helpers.bulk` of the same documents, same node | {w['bulk']:,.0f} docs/s |")
    print(f"| **worker / bulk** | **{w['worker'] / w['bulk']:.2f}** |")
    print(f"| guard chain's share of the worker's time (timed inside it) | {w['chain_share']:.0%} |")
    print(f"| worker without the chain's time / bulk | {w['worker_without_chain'] / w['bulk']:.2f} |")
    for name in ("direct", "fcmon search", "direct HTTP", "gateway"):
        p50, p95 = s[name]
        print(f"| search p50 / p95, {name}, {s['records']:,} records, {s['queries']} queries | {p50:.2f} / {p95:.2f} ms |")
    for name, base in (("fcmon search", "direct"), ("gateway", "direct HTTP")):
        print(f"| **{name} / {base} at p50** | **{s[name][0] / s[base][0]:.2f}** (p95 {s[name][1] / s[base][1]:.2f}) |")
    print(f"| worker peak resident memory, backlog {m['backlog']:,}, {m['seconds']:.0f} s ({m['indexed']:,} indexed meanwhile) "
          f"| {m['peak_rss_mb']:,.0f} MB |")


if __name__ == "__main__":
    main()
