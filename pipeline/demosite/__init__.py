"""A small public forum and local-news site served on 127.0.0.1: the fixture the demo and the crawler tests crawl."""
from pipeline.demosite.server import DemoSite

__all__ = ["DemoSite"]
