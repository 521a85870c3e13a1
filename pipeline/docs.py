"""Reference pages generated from the code, so they cannot drift: `python -m pipeline.docs` rewrites them."""
from __future__ import annotations

import json

import click
from pydantic_core import PydanticUndefined

from pipeline.settings import REPO_CONFIG_DIR, Settings

DOCS_DIR = REPO_CONFIG_DIR.parent / "docs"


def settings_page() -> str:
    lines = ["# Settings", "",
             "Generated from `pipeline/settings.py` by `python -m pipeline.docs`; a test fails when it is stale.", "",
             "Each setting comes, strongest first, from a command-line option where one exists, the environment variable,",
             "the TOML config file (`FCMON_CONFIG`, else `<data dir>/fcmon.toml`, with the names in the first column as keys),",
             "then the default.", "",
             "| setting | environment | default | meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
        if default is PydanticUndefined:
            default = None
        if name == "config_dir":
            default = "config/ of the checkout"
        shown = json.dumps(default, default=str) if not isinstance(default, str) else default
        lines.append(f"| `{name}` | `FCMON_{name.upper()}` | `{shown}` | {field.description} |".replace("\n", " "))
    return "\n".join(lines) + "\n"


def cli_page() -> str:
    from pipeline.cli import cli

    lines = ["# Commands", "", "Generated from the command definitions by `python -m pipeline.docs`; a test fails when it is stale.", ""]

    def walk(command: click.Command, path: list[str]) -> None:
        if isinstance(command, click.Group):
            for name in sorted(command.commands):
                walk(command.commands[name], [*path, name])
            return
        with click.Context(command, info_name=" ".join(path), terminal_width=100, max_content_width=100) as ctx:
            lines.extend([f"## `{' '.join(path)}`", "", "```", command.get_help(ctx), "```", ""])

    walk(cli, ["fcmon"])
    return "\n".join(lines)


PAGES = {"settings.md": settings_page, "cli.md": cli_page}


def write() -> None:
    DOCS_DIR.mkdir(exist_ok=True)
    for name, render in PAGES.items():
        (DOCS_DIR / name).write_text(render())


if __name__ == "__main__":
    write()
