"""The data directory: one folder holding every local backend."""
from __future__ import annotations

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
    return data_dir
