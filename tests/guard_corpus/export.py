"""`python -m tests.guard_corpus.export DIR`: the labelled corpus as guard-check input files."""
import sys
from pathlib import Path

from tests.guard_corpus import write

if __name__ == "__main__":
    for name, path in write(Path(sys.argv[1] if len(sys.argv) > 1 else "guard-corpus")).items():
        print(f"{name}: {path}")
