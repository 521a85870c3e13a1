"""scripts/stack up|down|status [--dir DIR]: the real Kafka and Elasticsearch on loopback, without Docker.

    eval "$(scripts/stack up)"     # prints the export lines that point fcmon at them
    scripts/stack status
    scripts/stack down
"""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from pipeline.stack import StackError, StackState, alive, java_home, stop_pid, versions
from pipeline.stack.elasticsearch import Elasticsearch, distribution
from pipeline.stack.kafka import Kafka, libs, metadata_answers


def say(message: str) -> None:
    print(f"stack: {message}", file=sys.stderr, flush=True)


def up(directory: Path) -> StackState:
    """Start both (again, on the same ports, data and passwords, when `directory` held a stack) and wait for them."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)  # Elasticsearch's system user must reach its folder inside
    previous = StackState.load(directory) if (directory / "stack.json").is_file() else None
    if previous and _running(previous):
        say(f"already running in {directory}")
        return previous
    java_home(17)
    v = versions()
    say(f"Kafka {v['KAFKA_VERSION']} and Elasticsearch {v['ELASTIC_VERSION']} (fetched once into the cache)")
    libs(), distribution()
    kafka = Kafka(directory / "kafka", **({"port": previous.kafka["port"],
                                          "controller_port": previous.kafka["controller_port"]} if previous else {}))
    es = Elasticsearch(directory / "elasticsearch", **({"port": previous.elasticsearch["port"],
                                                        "passwords": previous.elasticsearch["passwords"]}
                                                       if previous else {}))
    errors: list[BaseException] = []

    def start(server) -> None:
        try:
            server.start()
        except BaseException as exc:  # reported below, after both had their chance
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(server,)) for server in (kafka, es)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    except BaseException:  # interrupted (Ctrl-C, SIGTERM): nothing this call started is left running
        _stop_started(kafka, es, threads)
        raise
    if errors:
        _stop_started(kafka, es, threads)
        raise errors[0]
    state = StackState(dir=str(directory), kafka={"port": kafka.port, "controller_port": kafka.controller_port,
                                                  "bootstrap": kafka.bootstrap, "pid": kafka.proc.pid,
                                                  "log": str(kafka.log)},
                       elasticsearch={"port": es.port, "url": es.url, "pid": es.proc.pid, "server_pid": es.server_pid,
                                      "log": str(es.log), "passwords": es.passwords, "admin_user": "fcmon-admin",
                                      "admin_password": es.passwords["fcmon-admin"], "service_user": "fcmon",
                                      "service_password": es.passwords["fcmon"]})
    state.save()
    say(f"Kafka on {kafka.bootstrap}, Elasticsearch on {es.url}; data in {directory}")
    return state


def _stop_started(kafka: Kafka, es: Elasticsearch, threads: list[threading.Thread]) -> None:
    """Stop both servers, the Elasticsearch node behind its launcher too, and again once the starting threads end
    (a thread may have been about to launch its server)."""
    for _ in range(2):
        server_pid = es.server_pid
        kafka.stop(), es.stop()
        stop_pid(server_pid)
        for thread in threads:
            thread.join(timeout=60)


def _running(state: StackState) -> bool:
    return bool(state.kafka.get("pid") and alive(state.kafka["pid"]) and state.elasticsearch.get("pid")
                and alive(state.elasticsearch["pid"]))


def down(directory: Path) -> None:
    state = StackState.load(directory.resolve())
    for name, info in (("Kafka", state.kafka), ("Elasticsearch", state.elasticsearch)):
        for key in ("pid", "server_pid"):
            stop_pid(info.get(key))
        say(f"{name} stopped (pid {info.get('pid')})")


def status(directory: Path) -> bool:
    state = StackState.load(directory.resolve())
    kafka_up = alive(state.kafka["pid"]) and _answers(lambda: metadata_answers(state.kafka["port"]))
    es = Elasticsearch(Path(state.dir) / "elasticsearch", port=state.elasticsearch["port"],
                       passwords=state.elasticsearch["passwords"])
    es_up = alive(state.elasticsearch["pid"]) and _answers(es.healthy)
    print(f"kafka          {'up' if kafka_up else 'down':5} {state.kafka['bootstrap']:24} pid {state.kafka['pid']}")
    print(f"elasticsearch  {'up' if es_up else 'down':5} {state.elasticsearch['url']:24} "
          f"pid {state.elasticsearch['pid']}")
    print(f"data           {state.dir}")
    return kafka_up and es_up


def _answers(check) -> bool:
    try:
        return bool(check())
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/stack", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("FCMON_STACK_DIR") or ".stack"),
                        help="where the stack keeps its data, logs and passwords (FCMON_STACK_DIR; default ./.stack)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a SIGTERM during `up` stops what it started
    try:
        if args.command == "up":
            for key, value in up(args.dir).exports().items():
                print(f"export {key}={shlex.quote(value)}")
            return 0
        if args.command == "down":
            down(args.dir)
            return 0
        return 0 if status(args.dir) else 1
    except StackError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
