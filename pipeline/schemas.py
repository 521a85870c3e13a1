"""Export the interchange format's JSON Schemas into config/schemas/ (`python -m pipeline.schemas`)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from pipeline.models import INTERCHANGE_MODELS
from pipeline.settings import REPO_CONFIG_DIR

SCHEMA_DIR = REPO_CONFIG_DIR / "schemas"


def rendered() -> dict[str, str]:
    """File name -> schema text, as the models define them today."""
    return {f"{name}.schema.json": json.dumps(model.model_json_schema(mode="validation"), indent=2, sort_keys=True) + "\n"
            for name, model in INTERCHANGE_MODELS.items()}


def export(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered().items():
        (directory / name).write_text(text)
        written.append(directory / name)
    return written


if __name__ == "__main__":
    for path in export():
        print(path, file=sys.stderr)
