"""The HTML of connect sessions: the page listing a session's providers, the page that
reports the outcome back to the host (redirect or postMessage), and their headers."""

from __future__ import annotations

import json
import secrets
from html import escape
from typing import Any

from .pages import result_page

# The dashboard's policy, with forms allowed to post to the hub itself (the paste form).
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
PAGE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": PAGE_CSP}

_SESSION_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Connect an account</title>
<link rel="stylesheet" href="/static/result.css"><link rel="stylesheet" href="/static/connect.css"></head>
<body><main id="session" data-session="{session}">
<h1>Connect an account</h1>
<p class="muted">Choose the service to connect. You will sign in on its own page and come back here.</p>
<ul class="providers">{items}</ul>
</main></body></html>
"""

_ITEM = """<li class="provider" data-provider="{name}"><h2>{title}</h2>
<a class="btn" id="start-{name}" href="{start}">Connect {title}</a>
<details><summary>Paste a token or API key instead</summary>
<form method="post" action="{paste}"><label>{title} token<input type="password" name="token" autocomplete="off" required maxlength="4096"></label>
<button class="btn btn-quiet" type="submit">Connect with this token</button></form></details></li>"""


def session_page(session_id: str, providers: list[tuple[str, str]]) -> str:
    """``providers``: (name, title) pairs, in the session's order."""
    base = f"/connect/sessions/{escape(session_id)}"
    items = "".join(
        _ITEM.format(name=escape(name), title=escape(title), start=f"{base}/start/{escape(name)}", paste=f"{base}/paste/{escape(name)}")
        for name, title in providers
    )
    return _SESSION_PAGE.format(session=escape(session_id), items=items)


_REPORT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{heading}</title>
<link rel="stylesheet" href="/static/result.css"></head>
<body><main id="result" data-status="{status}" data-code="{code}"><h1 class="{tone}">{heading}</h1><p>{message}</p>
<p id="hint">You can close this window.</p></main>
<script nonce="{nonce}">
(function () {{
  // Tell the application that opened this window how the connect ended, addressed to its
  // allow-listed origin alone (never a wildcard); else send the browser to its return URL.
  var report = {report};
  if (report.openerOrigin && window.opener) {{
    window.opener.postMessage(report.message, report.openerOrigin);
    window.close();
  }} else if (report.returnUrl) {{
    window.location.replace(report.returnUrl);
  }}
}})();
</script></body></html>
"""


def report_page(*, ok: bool, title: str, message: str, code: str, report: dict[str, Any]) -> tuple[str, str]:
    """The page and its CSP: ``report`` holds ``message`` (what is posted), ``openerOrigin``
    and ``returnUrl`` (either may be None)."""
    nonce = secrets.token_urlsafe(16)
    heading = f"{title} connected" if ok else f"{title} was not connected"
    # json.dumps escapes quotes; "<" is escaped too so nothing can close the script element.
    data = json.dumps(report).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    page = _REPORT_PAGE.format(heading=escape(heading), message=escape(message), status="success" if ok else "error",
                               tone="ok" if ok else "bad", code=escape(code), nonce=nonce, report=data)
    csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'self'; img-src data:; base-uri 'none'; "
           "form-action 'none'; frame-ancestors 'none'")
    return page, csp


def problem_page(*, title: str, message: str, code: str) -> str:
    """A refusal on a connect session's route, its code readable in ``data-code``."""
    return result_page(ok=False, provider_title=title, message=message, code=code)
