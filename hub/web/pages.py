"""The small HTML pages a browser sees at the end of a connect flow."""

from __future__ import annotations

from html import escape

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{title}</title>
<link rel="stylesheet" href="/static/result.css"></head>
<body><main id="result" data-status="{status}"{code}><h1 class="{tone}">{heading}</h1><p>{message}</p><p>{hint}</p></main></body></html>
"""


def result_page(*, ok: bool, provider_title: str, message: str, code: str | None = None) -> str:
    heading = f"{provider_title} connected" if ok else f"{provider_title} was not connected"
    hint = "You can close this window." if ok else "You can close this window and try again."
    return _PAGE.format(
        title=escape(heading),
        heading=escape(heading),
        message=escape(message),
        hint=escape(hint),
        tone="ok" if ok else "bad",
        status="success" if ok else "error",
        code=f' data-code="{escape(code)}"' if code else "",
    )


_FRAGMENT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Connecting {title}</title>
<link rel="stylesheet" href="/static/result.css"></head>
<body><main id="result" data-status="pending" data-provider="{provider}">
<h1 id="heading">Connecting {title}&hellip;</h1><p id="message">Finishing the connection.</p>
<noscript><p>This page needs JavaScript to finish connecting {title}.</p></noscript>
</main>
<script nonce="{nonce}">
(function () {{
  // The provider put the token in the URL fragment, which never reaches a server. Read it
  // here, drop it from the address bar and history, and hand it to the hub with the state.
  var fragment = new URLSearchParams(window.location.hash.slice(1));
  var state = new URLSearchParams(window.location.search).get("state");
  history.replaceState(null, "", window.location.pathname);
  var main = document.getElementById("result");
  function show(ok, heading, message) {{
    main.dataset.status = ok ? "success" : "error";
    var h = document.getElementById("heading");
    h.textContent = heading;
    h.className = ok ? "ok" : "bad";
    document.getElementById("message").textContent = message;
  }}
  var token = fragment.get("token");
  if (!token) {{
    var why = fragment.get("error") === "access_denied" ? "Access was declined, so nothing was connected."
      : "{title} did not hand back a token.";
    show(false, "{title} was not connected", why + " You can close this window and try again.");
    return;
  }}
  fetch({post_url}, {{
    method: "POST",
    headers: {{"Content-Type": "application/json", "Accept": "application/json"}},
    // The connect session's cookie, when this flow was started from its page (same origin only).
    credentials: "same-origin",
    body: JSON.stringify({{token: token, state: state}})
  }}).then(function (resp) {{
    return resp.json().then(function (body) {{ return {{ok: resp.ok, body: body}}; }});
  }}).then(function (r) {{
    if (r.ok) {{
      show(true, "{title} connected", r.body.message + " You can close this window.");
      var data = r.body.data || {{}};
      if (data.openerOrigin && data.openerMessage && window.opener) {{
        // A connect session that reports to the page that opened it: its origin only.
        window.opener.postMessage(data.openerMessage, data.openerOrigin);
        window.close();
      }} else if (data.returnUrl) {{ window.location.replace(data.returnUrl); }}
    }} else {{
      show(false, "{title} was not connected", (r.body.error && r.body.error.message) || "The hub refused the token.");
    }}
  }}).catch(function () {{
    show(false, "{title} was not connected", "The hub could not be reached. Try again.");
  }});
}})();
</script></body></html>
"""


def fragment_page(*, provider: str, provider_title: str, post_url: str, nonce: str) -> str:
    import json

    # Titles come from plugins: escape for HTML, and keep them inert inside the script's strings.
    title = escape(provider_title).replace("\\", "").replace('"', "")
    return _FRAGMENT_PAGE.format(title=title, provider=escape(provider), post_url=json.dumps(post_url), nonce=nonce)
