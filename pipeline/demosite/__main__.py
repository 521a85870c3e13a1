"""`python -m pipeline.demosite [PORT]`: serve the demo's fixture site on 127.0.0.1 until interrupted."""
import sys
import time

from pipeline.demosite.server import DemoSite

with DemoSite(port=int(sys.argv[1]) if len(sys.argv) > 1 else 8741) as site:
    print(f"serving the fixture site at {site.url}/ (Ctrl-C stops it)", file=sys.stderr)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
