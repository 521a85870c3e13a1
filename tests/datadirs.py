"""Factories for real data directories and for running the real `fcmon` command."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pipeline.app import App
from pipeline.datadir import DataDir
from pipeline.settings import Settings
from tests.factories_pipeline import ROLES

FCMON = [sys.executable, "-m", "pipeline"]


def make_app(root: Path, *taskings, **settings) -> App:
    """A data directory with the usual users and the given taskings stored as they are."""
    DataDir(root).create()
    app = App(Settings(data_dir=root, **settings))
    for name, role in ROLES.items():
        app.state.add_user(name, role)
    for tasking in taskings:
        app.state.put_tasking(tasking)
    return app


def fcmon(*args: str, env: dict[str, str] | None = None, timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FCMON_")} | (env or {})
    result = subprocess.run([*FCMON, *args], capture_output=True, text=True, env=full_env, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"fcmon {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result
