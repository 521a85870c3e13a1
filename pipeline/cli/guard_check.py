from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import click

from guards.batch import check_items, jsonl_lines, read_roles, read_taskings
from guards.evaluation import format_report, read_labels, score
from pipeline.cli import build_app, cli, progress
from pipeline.datadir import DataDir

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@cli.command("guard-check")
@click.option("--taskings", "taskings_file", required=True, type=FILE, help="Taskings, one JSON per line (config/schemas/tasking.schema.json).")
@click.option("--items", "items_file", required=True, type=FILE, help="Collected items, one JSON per line (config/schemas/collected-item.schema.json).")
@click.option("--users", "users_file", type=FILE, help="Who holds which role, one JSON per line (user-role.schema.json); default: the data directory's users, if one is configured.")
@click.option("--json", "as_json", is_flag=True, help="One decision per line (JSONL, config/schemas/guard-decision.schema.json).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Data directory whose users prove approvers' roles (default: FCMON_DATA_DIR).")
@click.option("--labels", "labels_file", type=FILE, help="What each item is, one JSON per line ({item_id, label, lang, group}; docs/guards.md), for --report.")
@click.option("--report", is_flag=True, help="Instead of the decisions, print recall per label and language and precision per rule against --labels (with --json: one JSON object).")
@click.pass_context
def guard_check(ctx: click.Context, taskings_file: Path, items_file: Path, users_file: Path | None, as_json: bool,
                data_dir: str | None, labels_file: Path | None, report: bool) -> None:
    """Run the guard chain on JSONL files and print one decision per item; stores nothing.

    Without --users or a data directory, no approver's role can be proven and every item is rejected (fail closed).
    With --labels and --report, prints how the decisions score against the labels instead (docs/guards.md).
    """
    if report and not labels_file:
        raise click.UsageError("--report needs --labels FILE: what each item is")
    labels = read_labels(jsonl_lines(labels_file)) if labels_file else None
    app = build_app(data_dir or ctx.find_root().params.get("data_dir"), None)
    taskings, invalid = read_taskings(taskings_file)
    for key, error in invalid.items():
        progress(f"guard-check: {error}: items under {key} are rejected")
    roles = read_roles(users_file) if users_file else None
    if roles is None and app.settings.data_dir and DataDir(app.settings.data_dir).state_db.is_file():
        roles = app.state.roles()
    if roles is None:
        progress("guard-check: no --users and no data directory: approvers' roles cannot be proven, every tasking fails closed")
    counts: Counter[str] = Counter()
    decided = []
    for decision in check_items(jsonl_lines(items_file), taskings, invalid, roles, app.settings):
        counts[decision.decision] += 1
        if report:
            decided.append(decision)
        elif as_json:
            sys.stdout.write(decision.model_dump_json() + "\n")
        else:
            first = decision.reasons[0] if decision.reasons else None
            click.echo(f"{decision.item_id}  {decision.decision:<11}  " +
                       (f"{first.rule} [{first.clause}]: {first.message}" if first else ""))
    app.close()
    if report:
        scored = score(decided, labels or {})
        click.echo(json.dumps(scored, ensure_ascii=False) if as_json else format_report(scored))
    progress(f"guard-check: {sum(counts.values())} items: indexed {counts['indexed']}, "
             f"quarantined {counts['quarantined']}, rejected {counts['rejected']} (nothing stored)")
