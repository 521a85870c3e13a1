"""The dependency audit of `make lint`: pip-audit over the installed environment, failing closed.

    .venv/bin/python scripts/audit_deps.py [--allow config/security/pip-audit-allow.txt] [--services osv,pypi]
                                           [--osv-url URL] [--if-unreachable fail|warn]

Asks OSV first, else PyPI's JSON API (the service each is, pip-audit's `--vulnerability-service osv|pypi`), after
checking that the service answers at all: pip-audit reports a package it could not look up as "not found" and,
without --strict, passes. Here a service that cannot be reached, or any package left unaudited, fails the audit
(exit 2) with what was tried, and an advisory fails it (exit 1) unless the allow-list names it with a reason.
`--if-unreachable warn` (what .ci/run passes: its machines reach no vulnerability service) turns only the first case,
no service answering at all, into a warning that says the audit did not run; a service that answers still fails
on anything unaudited or any advisory.
fcmon itself (installed editable) is on no index and is skipped.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOW = ROOT / "config" / "security" / "pip-audit-allow.txt"
OSV_URL = "https://api.osv.dev/v1/query"


def probe(service: str, osv_url: str) -> urllib.request.Request:
    """What pip-audit itself asks the service, for a package installed here: a lookup that must answer 200."""
    if service == "osv":
        data = json.dumps({"package": {"name": "pip-audit", "ecosystem": "PyPI"}, "version": version("pip-audit")}).encode()
        json_type = {"Content-Type": "application/json"}
        return urllib.request.Request(osv_url, data, json_type, method="POST")  # noqa: S310 (main() takes http(s) only)
    return urllib.request.Request(f"https://pypi.org/pypi/pip-audit/{version('pip-audit')}/json")


def allowed(path: Path) -> dict[str, str]:
    """The allow-list: advisory id -> reason (a line without a reason is refused)."""
    ids: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        advisory, _, reason = line.partition(" ")
        if not reason.strip():
            raise SystemExit(f"audit_deps: {path}:{number}: {advisory} has no reason: say why it is accepted, or remove it")
        ids[advisory] = reason.strip()
    return ids


def reachable(service: str, osv_url: str) -> str | None:
    """None when the service answers a lookup, else what went wrong (as the error said it)."""
    request = probe(service, osv_url)
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:  # noqa: S310 (https, or the --osv-url given)
            return None if answer.status == 200 else f"{request.full_url} answered HTTP {answer.status}"
    except urllib.error.HTTPError as exc:
        return f"{request.full_url} answered HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{request.full_url}: {getattr(exc, 'reason', exc)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--allow", type=Path, default=ALLOW, help="the allow-list (default config/security/pip-audit-allow.txt)")
    parser.add_argument("--services", default="osv,pypi", help="the services to try, in order (default osv,pypi)")
    parser.add_argument("--osv-url", default=OSV_URL, help=f"OSV's query endpoint (default {OSV_URL})")
    parser.add_argument("--if-unreachable", choices=("fail", "warn"), default="fail",
                        help="when no service answers: fail (default, exit 2) or warn that nothing was audited (exit 0)")
    args = parser.parse_args()
    if not args.osv_url.startswith(("https://", "http://")):
        raise SystemExit(f"audit_deps: --osv-url {args.osv_url!r} is not an http(s) URL")
    ignored = allowed(args.allow)
    failures: dict[str, str | None] = {}
    for service in args.services.split(","):
        if service not in ("osv", "pypi"):
            raise SystemExit(f"audit_deps: unknown service {service!r}: choose from osv, pypi")
        failures[service] = reachable(service, args.osv_url)
        if failures[service] is None:
            break
    else:
        tried = "; ".join(f"{s}: {why}" for s, why in failures.items())
        where = "Run `make lint` where api.osv.dev or pypi.org's per-release JSON API can be reached."
        if args.if_unreachable == "warn":
            print(f"audit_deps: WARNING: the dependency audit did NOT run: no vulnerability service answers ({tried}). "
                  + where, file=sys.stderr)
            return 0
        print(f"audit_deps: error: no vulnerability service answers, so no dependency was audited (failing closed): "
              f"{tried}. {where}", file=sys.stderr)
        return 2
    print(f"audit_deps: pip-audit against {service}, {len(ignored)} advisory(ies) allowed ({args.allow.name})",
          file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        # not --strict: it also fails on the editable fcmon it was told to skip; skips are judged below instead
        command = [sys.executable, "-m", "pip_audit", "--skip-editable", "--progress-spinner", "off", "--format", "json",
                   "--output", str(report), "--vulnerability-service", service,
                   *(["--osv-url", args.osv_url] if service == "osv" else []), *(f"--ignore-vuln={i}" for i in ignored)]
        done = subprocess.run(command, check=False)  # noqa: S603 (this interpreter, fixed arguments)
        if not report.is_file():
            print(f"audit_deps: error: pip-audit stopped (exit {done.returncode}) without a report: nothing audited",
                  file=sys.stderr)
            return 2
        dependencies = json.loads(report.read_text())["dependencies"]
    unaudited = [f"{d['name']} {d.get('version', '')}: {d['skip_reason']}" for d in dependencies
                 if d.get("skip_reason") and d["name"] != "fcmon"]
    found = [(d["name"], d["version"], v) for d in dependencies for v in d.get("vulns", [])]
    for name, installed, vuln in found:
        fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed release"
        print(f"{name} {installed}: {vuln['id']} ({', '.join(vuln.get('aliases') or []) or 'no alias'}), fixed in {fixed}: "
              f"{vuln.get('description', '')[:200]}")
    audited = sum(1 for d in dependencies if not d.get("skip_reason"))
    if unaudited:
        print(f"audit_deps: error: {len(unaudited)} package(s) could not be audited (failing closed): "
              + "; ".join(unaudited), file=sys.stderr)
        return 2
    if found:
        print(f"audit_deps: error: {len(found)} advisory(ies) in {audited} packages: upgrade the package named, or, when "
              f"no fixed release exists, add the advisory to {args.allow} with the reason", file=sys.stderr)
        return 1
    print(f"audit_deps: {audited} packages audited against {service}, no advisory outside the allow-list", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
