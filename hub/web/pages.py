"""The small HTML pages a browser sees at the end of a connect flow."""

from __future__ import annotations

from html import escape

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f5f6f8;color:#1d2330;
display:flex;min-height:100vh;align-items:center;justify-content:center;margin:0}}
main{{background:#fff;border-radius:12px;box-shadow:0 2px 12px rgba(0,0,0,.08);padding:2rem 2.5rem;max-width:32rem;margin:1rem}}
h1{{font-size:1.3rem;margin:0 0 .75rem;color:{colour}}}
p{{line-height:1.5;margin:.5rem 0}}
</style></head>
<body><main id="result" data-status="{status}"><h1>{heading}</h1><p>{message}</p><p>{hint}</p></main></body></html>
"""


def result_page(*, ok: bool, provider_title: str, message: str) -> str:
    heading = f"{provider_title} connected" if ok else f"{provider_title} was not connected"
    hint = "You can close this window." if ok else "You can close this window and try again."
    return _PAGE.format(
        title=escape(heading),
        heading=escape(heading),
        message=escape(message),
        hint=escape(hint),
        colour="#1a7f37" if ok else "#c62828",
        status="success" if ok else "error",
    )
