"""The data directory: one folder holding every local backend.

Its files are the records, the taskings, the password hashes and the audit log, so reading them directly would step
around every audited gate: the folder is created for its owner only (0700), and one that any account on the machine
can open is refused (28CFR23.20(g): safeguards against unauthorized access). Group access is left to the operator.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import FcmonError
from pipeline.settings import Settings

MARKER = "FCMON_DATA_DIR"


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def state_db(self) -> Path:
        return self.root / "state.db"

    @property
    def bus_db(self) -> Path:
        return self.root / "bus.db"

    @property
    def audit_db(self) -> Path:
        return self.root / "audit.db"

    @property
    def audit_head(self) -> Path:
        return self.root / "audit.head"

    @property
    def monitor_db(self) -> Path:
        return self.root / "monitor.db"

    @property
    def index_dir(self) -> Path:
        return self.root / "index"

    def exists(self) -> bool:
        return (self.root / MARKER).is_file()

    def create(self) -> bool:
        """Create the layout; returns False when it was already there."""
        if self.exists():
            return False
        if self.root.exists() and any(self.root.iterdir()):
            raise FcmonError(f"{self.root} exists and is not an fcmon data directory",
                             "choose an empty or new folder for --data-dir")
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            os.chmod(self.root, 0o700)
        except OSError as exc:
            raise FcmonError(f"cannot make {self.root} private to its owner ({exc.strerror})",
                             "create the data directory as the account fcmon runs as") from exc
        self.index_dir.mkdir(exist_ok=True)
        (self.root / MARKER).write_text("This folder is an fcmon data directory. Its audit log is evidence: do not edit.\n")
        return True


def require_data_dir(settings: Settings) -> DataDir:
    if settings.data_dir is None:
        raise FcmonError("no data directory given", "pass --data-dir DIR or set FCMON_DATA_DIR")
    data_dir = DataDir(settings.data_dir)
    if not data_dir.exists():
        raise FcmonError(f"{settings.data_dir} is not an fcmon data directory",
                         f"run `fcmon --data-dir {settings.data_dir} init` first")
    mode = stat.S_IMODE(data_dir.root.stat().st_mode)
    if mode & 0o007:
        raise FcmonError(f"the data directory {data_dir.root} is open to every account on this machine (mode {mode:o}): "
                         "its records and audit log must be read only through fcmon",
                         f"run: chmod o-rwx {data_dir.root}")
    return data_dir
