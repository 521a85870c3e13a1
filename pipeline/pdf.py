"""HTML printed to PDF by WeasyPrint, which fetches nothing: packets and the transparency report.

A packet holds crawled content, which is hostile: the template escapes it, and should markup ever get through,
WeasyPrint still loads no image, stylesheet or font from anywhere (InlineOnly refuses every URL but data:), so opening
a document neither calls a crawled site nor reaches a host on the center's network. The PDF's dates come from the
document (a packet's: the dissemination's time), so the same document gives the same bytes.
"""
from __future__ import annotations

import logging

from pipeline.errors import FcmonError

log = logging.getLogger(__name__)


ENGINE_HINT = ("PDFs need WeasyPrint and the Pango library (`pip install fcmon`, and on Debian "
               "`apt-get install libpango-1.0-0 libpangoft2-1.0-0`); or write the HTML (--out FILE.html)")


def engine() -> None:
    """Refuse early (before anything is disseminated) when WeasyPrint cannot be loaded."""
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError) as exc:  # OSError: the Pango library is missing
        raise FcmonError(f"cannot render a PDF: {exc}", ENGINE_HINT) from exc


def html_to_pdf(document: str) -> bytes:
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    class InlineOnly(URLFetcher):
        """data: URLs only; anything else is refused and logged, never requested."""

        def fetch(self, url, headers=None):  # type: ignore[no-untyped-def]
            if url.lower().startswith("data:"):
                return super().fetch(url, headers)
            log.warning("event=pdf.fetch_refused url=%r", url[:200])
            raise ValueError(f"a PDF fetches nothing: {url[:200]}")

    try:
        pdf = HTML(string=document, base_url=None, url_fetcher=InlineOnly(allowed_protocols=("data",))).write_pdf(pdf_tags=True)
    except (ImportError, OSError) as exc:
        raise FcmonError(f"cannot render a PDF: {exc}", ENGINE_HINT) from exc
    assert isinstance(pdf, bytes)
    return pdf
