from __future__ import annotations

import logging
import signal
import threading
from typing import Callable

import click

from pipeline.app import App
from pipeline.cli import app_options, cli, emit, get_app, progress
from pipeline.errors import FcmonError
from pipeline.quarantine import purge_expired
from pipeline.retention import run as retention_run
from pipeline.state import User

log = logging.getLogger(__name__)

DAY_S = 86_400
# Each step purges only what it has recorded in the audit log first; one failing does not hold up the other.
STEPS: dict[str, Callable[[App, User], int]] = {
    "holds_expired": lambda app, user: len(purge_expired(app)),
    "records_purged": lambda app, user: retention_run(app, user)["purged"],
}


def maintenance_round(app: App, user: User) -> tuple[dict[str, int], list[str]]:
    """Every step: what each purged, and the failures (a store or the audit log down: nothing purged unrecorded)."""
    done, failed = {}, []
    for name, step in STEPS.items():
        try:
            done[name] = step(app, user)
        except FcmonError as exc:
            failed.append(f"{name}: {exc}")
    return done, failed


@cli.command()
@app_options
@click.option("--every", "every_s", type=click.FloatRange(min=1), default=DAY_S, show_default=True, metavar="SECONDS",
              help="Seconds between rounds.")
@click.option("--once", is_flag=True, help="One round, then exit (for cron); a failed step exits 2.")
@click.option("--json", "as_json", is_flag=True, help="With --once: print the round's counts as JSON.")
@click.pass_context
def maintain(ctx: click.Context, data_dir: str | None, acting_user: str | None, every_s: float, once: bool,
             as_json: bool) -> None:
    """Purge on schedule (supervisor or admin): holds older than quarantine_days and records whose purge date has come
    (28CFR23.20(h)), each audited before it happens. Runs until SIGTERM; a failed step is logged and retried."""
    app = get_app(ctx, data_dir, acting_user)
    user = app.acting_user("supervisor", "admin")
    if once:
        done, failed = maintenance_round(app, user)
        if failed:
            raise FcmonError(f"maintain: {'; '.join(failed)}", "fix what failed and run it again; nothing was purged unrecorded")
        emit(done, as_json, lambda: click.echo(
            f"maintain: {done['holds_expired']} expired hold(s) and {done['records_purged']} record(s) purged"))
        return
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stopping.is_set():
            done, failed = maintenance_round(app, user)
            progress("maintain: " + " ".join(f"{k}={v}" for k, v in done.items()) + f" next_in={every_s:g}s")
            for failure in failed:
                log.error("maintain: %s (retried in %gs)", failure, every_s)
            stopping.wait(every_s)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
