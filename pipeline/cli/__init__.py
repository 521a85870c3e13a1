"""`fcmon`: one command group, one module per command.

Errors a user can act on print one line and exit 2; nothing prints a traceback unless FCMON_DEBUG=1.
"""
from __future__ import annotations

import html
import json
import logging
import os
import pwd
import re
import socket
import sqlite3
import sys
from typing import Any, Callable

import click
from pydantic import ValidationError

from pipeline.app import App
from pipeline.errors import FcmonError
from pipeline.settings import Settings, missing_secrets, unknown_env

EXIT_USER_ERROR = 2
EXIT_INTERNAL = 70


def build_app(data_dir: str | None, acting_user: str | None, **overrides: Any) -> App:
    unknown = unknown_env()
    if unknown:
        raise FcmonError(f"invalid configuration: {unknown[0]} names no setting",
                         "correct or unset it (the settings are in docs/settings.md)")
    init: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    if data_dir:
        init["data_dir"] = data_dir
    try:
        settings = Settings(**init)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise FcmonError(f"invalid configuration: {field}: {first['msg']}",
                         f"fix FCMON_{field.upper()} or `{field}` in the config file (see docs/settings.md)") from exc
    except (FileNotFoundError, ValueError) as exc:
        raise FcmonError(f"invalid configuration: {exc}", "fix the config file named by FCMON_CONFIG") from exc
    except RecursionError as exc:  # tomllib recurses once per nested array or inline table
        raise FcmonError("invalid configuration: the config file nests too deeply to read",
                         "fix the config file named by FCMON_CONFIG") from exc
    missing = missing_secrets(settings)
    if missing:
        raise FcmonError(f"invalid configuration: {missing[0]} is not set (index=elasticsearch)",
                         f"set FCMON_{missing[0].upper()} or `{missing[0]}` in the config file (see docs/settings.md)")
    return App(settings, acting_user)


def os_account() -> str:
    """Who ran this command, as the operating system knows them: `--as` names the fcmon user, and anyone who can open
    the data directory can name anyone, so audit entries that record a client record this for the CLI."""
    try:
        login = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        login = f"uid {os.getuid()}"
    return f"{login}@{socket.gethostname()}"


def app_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--data-dir and --as on every command (they may also be given before the command name)."""
    fn = click.option("--as", "acting_user", metavar="NAME", help="Act as this user (default: FCMON_USER).")(fn)
    fn = click.option("--data-dir", type=click.Path(file_okay=False), help="Data directory (default: FCMON_DATA_DIR).")(fn)
    return fn


def get_app(ctx: click.Context, data_dir: str | None, acting_user: str | None) -> App:
    root = ctx.find_root().params
    app = build_app(data_dir or root.get("data_dir"), acting_user or root.get("acting_user"))
    ctx.call_on_close(app.close)
    return app


def emit(data: Any, as_json: bool, text: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        text()


CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def shown(text: str | None) -> str:
    """Crawled text made safe for a terminal: control characters (escape sequences could rewrite the screen) replaced."""
    return CONTROL_CHARS.sub("\ufffd", text or "")


def shown_highlight(fragment: str) -> str:
    """An HTML highlight (escaped text, matches in <mark>) as one terminal line with matches in [brackets]."""
    plain = html.unescape(fragment.replace("<mark>", "[").replace("</mark>", "]"))
    return shown(" ".join(plain.split()))


def progress(line: str) -> None:
    click.echo(line, err=True)


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise FcmonError(f"--listen {value!r} is not HOST:PORT", "e.g. --listen 127.0.0.1:9201")
    return host or "127.0.0.1", int(port)


def run_http(name: str, make_server: Callable[[str, int], Any], listen: str, detail: str = "") -> None:
    """Listen on HOST:PORT, say where, and serve until interrupted (the gateway and the web console)."""
    host, port = parse_listen(listen)
    try:
        server = make_server(host, port)
    except OSError as exc:
        raise FcmonError(f"cannot listen on {host}:{port} ({exc.strerror})", "choose another --listen address") from exc
    progress(f"{name}: listening on http://{host}:{server.server_port}{detail}")
    logging.getLogger(f"pipeline.{name}").info("event=%s.start listen=%s:%d", name, host, server.server_port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--data-dir", type=click.Path(file_okay=False), help="Data directory (default: FCMON_DATA_DIR).")
@click.option("--as", "acting_user", metavar="NAME", help="Act as this user (default: FCMON_USER).")
@click.version_option(package_name="fcmon")
def cli(data_dir: str | None, acting_user: str | None) -> None:
    """fcmon: monitor public web and social-media content under a lawful purpose, every query audited."""


def main() -> None:
    logging.basicConfig(level=os.environ.get("FCMON_LOG_LEVEL", "WARNING"), format="%(levelname)s %(name)s %(message)s")
    try:
        code = cli.main(standalone_mode=False)  # ctx.exit(N) comes back as N here, not as an exit
    except click.exceptions.Abort:
        click.echo("fcmon: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except FcmonError as exc:
        click.echo(f"fcmon: error: {exc}", err=True)
        sys.exit(EXIT_USER_ERROR)
    except sqlite3.OperationalError as exc:  # a full disk, a lock held past the busy timeout: the machine's, no bug
        click.echo(f"fcmon: error: a database in the data directory cannot be used ({exc}); free space on its disk or "
                   "wait for the process holding it, then run the command again", err=True)
        sys.exit(EXIT_USER_ERROR)
    except Exception as exc:
        if os.environ.get("FCMON_DEBUG"):
            raise
        click.echo(f"fcmon: internal error: {type(exc).__name__}: {exc} (set FCMON_DEBUG=1 for a traceback, and please report it)", err=True)
        sys.exit(EXIT_INTERNAL)
    if isinstance(code, int) and code:
        sys.exit(code)  # `audit verify` of a broken log, a failed demo: scripts and cron read the exit status


# Importing a command module registers its commands on `cli`.
from pipeline.cli import (  # noqa: E402,F401
    audit, audit_index, bus, compliance_report, crawl, demo, gateway, guard_check, init, maintain, monitor, packet,
    quarantine, record, report, retention, search, serve, tasking, user, watch, work,
)
