"""`python -m tests.guard_corpus.export DIR [--heldout]`: the labelled corpus (or the held-out set) as guard-check input."""
import sys
from pathlib import Path

from tests.guard_corpus import CASES, HELDOUT, write

if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--heldout"]
    source = HELDOUT if "--heldout" in sys.argv[1:] else CASES
    for name, path in write(Path(args[0] if args else "guard-corpus"), source).items():
        print(f"{name}: {path}")
