"""fcmon's flow: bus, worker, index, search, audit, CLI."""
