"""The shell of the self-contained HTML page that `sentiment explain` writes.

One file each, no network: inline CSS, images as data URIs, readable on a phone.
The evaluation report and `compare.html` are laid out by `document.html_document` instead.
"""

from __future__ import annotations

import html

BASE_CSS = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 0 12px 40px;
       line-height: 1.45; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; overflow-wrap: anywhere; }
img { max-width: 100%; height: auto; }
"""


def html_page(title: str, body: str, css: str = "") -> str:
    """A complete page: `title` is escaped here, `body` and `css` are inserted as given."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{BASE_CSS}{css}</style></head><body>
<h1>{html.escape(title)}</h1>
{body}
</body></html>
"""
