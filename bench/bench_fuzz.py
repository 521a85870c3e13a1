"""Fuzz every parser of outside input with many examples and count: examples, stored, refused (by reason), crashes,
unsafe results, hangs and the slowest input. The same targets and strategies as tests/test_fuzz_*.py, which run a
few dozen examples each in CI; this runs --n per parser (default 10,000) and keeps going past a failure, so the
counts are whole. HTTP targets run against the real console and gateway on 127.0.0.1; the gateway needs
Elasticsearch (the exported stack of `eval "$(scripts/stack up)"`, else one started here; --no-gateway skips it).

    .venv/bin/python bench/bench_fuzz.py [--n 10000] [--only rss_atom,html_page] [--no-gateway] [--json out.json]

Exit status 1 when any input crashed, hung or stored something unsafe.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.fuzz_targets import BOUND_S, TARGETS, Crash, Hang, Outcome, Tally, Unsafe, run  # noqa: E402


def count(name: str, strategy: st.SearchStrategy, check: Callable[[object, Tally], None], n: int) -> Tally:
    tally = Tally()

    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def one(value: object) -> None:
        try:
            check(value, tally)
        except (Crash, Unsafe, Hang, AssertionError) as exc:
            tally.crashes.append(f"{type(exc).__name__}: {exc}"[:300])

    started = time.monotonic()
    one()
    print(f"{name}: {tally.examples} examples in {time.monotonic() - started:.0f} s, stored {tally.stored}, "
          f"crashes {len(tally.crashes)}, slowest {tally.max_s:.2f} s", file=sys.stderr)
    return tally


def parser_check(name: str) -> Callable[[object, Tally], None]:
    target = TARGETS[name]

    def check(data: object, tally: Tally) -> None:
        outcome = run(target, data, tally)  # type: ignore[arg-type]
        if not outcome.stored and not outcome.refused:
            raise Unsafe("neither stored nor refused with a reason")
    return check


def timed(tally: Tally, call: Callable[[], Outcome]) -> None:
    started = time.perf_counter()
    try:
        outcome = call()
    except OSError as exc:  # a dropped connection or a timeout: the server did not answer
        raise Crash(f"no answer: {exc}") from exc
    finally:
        tally.examples += 1
        tally.max_s = max(tally.max_s, time.perf_counter() - started)
    tally.stored += outcome.stored > 0
    for reason in outcome.refused if not outcome.stored else ():
        tally.refused[reason] = tally.refused.get(reason, 0) + 1


def console_check(stack: ExitStack) -> Callable[[object, Tally], None]:
    from pipeline.passwords import hash_password
    from tests.datadirs import make_app
    from tests.factories_pipeline import make_tasking
    from tests.factories_web import WebClient, running_console
    from tests.fuzz_http import HOSTILE_RECORDS, LIVE, PASSWORD, answered_safely, send

    root = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    app = make_app(root / "d", make_tasking(**LIVE))
    stack.callback(app.close)
    app.state.set_password_hash("alice", hash_password(PASSWORD))
    app.index.upsert(HOSTILE_RECORDS)
    base = stack.enter_context(running_console(app))
    client = WebClient(base)
    client.sign_in("alice", PASSWORD)
    session = "; ".join(f"{c.name}={c.value}" for h in client.opener.handlers if hasattr(h, "cookiejar") for c in h.cookiejar)

    def check(request: object, tally: Tally) -> None:
        method, path, body, headers = request  # type: ignore[misc]
        timed(tally, lambda: answered_safely(*send(base, method, path, body, headers | {"Cookie": session})))
    return check


def gateway_check(stack: ExitStack) -> Callable[[object, Tally], None]:
    from pipeline.gateway import serve
    from pipeline.stack.elasticsearch import Elasticsearch
    from tests import stack as test_stack
    from tests.factories_gateway import PASSWORD, gateway_app, make_gateway, seed, wipe
    from tests.fuzz_http import answered_safely, basic, send
    from tests.servers import running

    node = test_stack._exported_stack()
    if node is None:
        home = test_stack.stack_dir("fcmon-bench-fuzz-")
        stack.callback(shutil.rmtree, home, ignore_errors=True)
        es = Elasticsearch(home)
        es.start()
        stack.callback(es.stop)
        node = test_stack.EsNode(es.url, es.passwords)
    scratch = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    (scratch / "seed").mkdir()  # seed() writes its audit entries there (pytest's fixture hands it a made folder)
    known = seed(node, scratch / "seed")
    stack.callback(lambda: wipe(node.client()))
    app = gateway_app(scratch / "d")
    base = stack.enter_context(running(serve(make_gateway(app, node.url, node), "127.0.0.1", 0)))
    other = [i.encode() for i in known.ids["T-2"]]

    def check(request: object, tally: Tally) -> None:
        path, body, content_type = request  # type: ignore[misc]
        headers = {"Authorization": basic("alice", PASSWORD), "X-Fcmon-Tasking": "T-1", "Content-Type": content_type}

        def one() -> Outcome:
            status, type_back, answer = send(base, "POST", path, body, headers)
            if any(i in answer for i in other):
                raise Unsafe("another tasking's record in the answer")
            return answered_safely(status, type_back, answer)
        timed(tally, one)
    return check


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="examples per parser")
    parser.add_argument("--only", help="comma-separated target names (default: all)")
    parser.add_argument("--no-gateway", action="store_true", help="skip the gateway (it needs Elasticsearch)")
    parser.add_argument("--json", type=Path, help="also write the counts here")
    args = parser.parse_args()
    from tests.fuzz_http import console_requests, gateway_bodies

    names = [*TARGETS, "console_http", "gateway_json"]
    chosen = args.only.split(",") if args.only else [n for n in names if not (args.no_gateway and n == "gateway_json")]
    results: dict[str, Tally] = {}
    with ExitStack() as stack:
        for name in chosen:
            if name in TARGETS:
                results[name] = count(name, TARGETS[name].inputs, parser_check(name), args.n)
            elif name == "console_http":
                results[name] = count(name, console_requests(), console_check(stack), args.n)
            elif name == "gateway_json":
                results[name] = count(name, gateway_bodies(), gateway_check(stack), args.n)
            else:
                parser.error(f"no target {name!r} (one of {', '.join(names)})")
    print(f"{'target':<20} {'examples':>8} {'stored':>7} {'refused':>8} {'crashes':>7} {'max s':>7}  top refusal reasons "
          f"(bound {BOUND_S:.0f} s an input)")
    for name, t in results.items():
        top = ", ".join(f"{r} {c}" for r, c in sorted(t.refused.items(), key=lambda rc: -rc[1])[:3])
        print(f"{name:<20} {t.examples:>8} {t.stored:>7} {t.examples - t.stored - len(t.crashes):>8} {len(t.crashes):>7} {t.max_s:>7.2f}  {top}")
        for crash in sorted(set(t.crashes))[:5]:
            print(f"    {crash}")
    if args.json:
        args.json.write_text(json.dumps({n: {"examples": t.examples, "stored": t.stored, "refused": t.refused,
                                             "crashes": t.crashes, "max_s": round(t.max_s, 3)} for n, t in results.items()}, indent=2))
    return 1 if any(t.crashes for t in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
