"""The HTML pages of single sign-on, shown in the user's browser.

Every value put in a page is escaped; pages are never framed (clickjacking) nor
cached (some carry a login token).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Final
from urllib.parse import urlencode

from aiohttp import web

from homeserver.sso import IdentityProvider

# What the user is asked to confirm, by the request a UIA session protects.
_OPERATIONS: Final = (
    ("DELETE /devices/", "remove a device from your account"),
    ("POST /delete_devices", "remove devices from your account"),
    ("POST /account/password", "change the password of your account"),
    ("POST /account/deactivate", "deactivate your account"),
    ("POST /keys/device_signing/upload", "set up new cross-signing keys for your account"),
)

# The spec's completion script of a fallback page ("Fallback").
_AUTH_DONE_SCRIPT: Final = """<script>
if (window.onAuthDone) {
    window.onAuthDone();
} else if (window.opener && window.opener.postMessage) {
    window.opener.postMessage("authDone", "*");
}
</script>"""


def html_response(body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=body,
        status=status,
        content_type="text/html",
        headers={
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "frame-ancestors 'none';",
        },
    )


def redirect_response(location: str) -> web.Response:
    """302 to ``location`` (returned, not raised: raised HTTP exceptions become
    Matrix errors in the middleware)."""
    return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def describe_operation(request: str) -> str:
    """What a UIA session's request does, in words."""
    for prefix, words in _OPERATIONS:
        if request.startswith(prefix):
            return words
    return "perform an action on your account"


def error_page(error: str, description: str) -> str:
    return _page(
        "Single sign-on failed",
        "<h1>Single sign-on failed</h1>\n"
        f"<p>{escape(description)}</p>\n"
        f"<p><small>Error: <code>{escape(error)}</code></small></p>",
    )


def login_confirm_page(
    redirect_url: str, display_url: str, user_id: str, server_name: str, new_user: bool
) -> str:
    """Asks the user whether the site of ``redirect_url`` may have their account."""
    intro = (
        f"Your account {escape(user_id)} has been created on {escape(server_name)}."
        if new_user
        else f"You are signed in to {escape(server_name)} as {escape(user_id)}."
    )
    return _page(
        "Continue to your client",
        "<h1>Continue to your client</h1>\n"
        f"<p>{intro}</p>\n"
        f"<p>Continuing gives <strong>{escape(display_url)}</strong> access to your "
        "account. Only continue if you trust that site and you asked to sign in there.</p>\n"
        f'<p><a href="{escape(redirect_url, quote=True)}">Continue</a></p>',
    )


def uia_confirm_page(request: str, redirect_url: str, provider: IdentityProvider) -> str:
    """Asks the user to re-authenticate for a UIA session's operation."""
    return _page(
        "Confirm it is you",
        "<h1>Confirm it is you</h1>\n"
        f"<p>A client is trying to {escape(describe_operation(request))}. To confirm, "
        f"sign in again with {escape(provider.name)}. If you did not ask for this, "
        "do not continue: your account may be compromised.</p>\n"
        f'<p><a href="{escape(redirect_url, quote=True)}">'
        f"Continue with {escape(provider.name)}</a></p>",
    )


def uia_success_page() -> str:
    """The fallback completion page: tells the client the stage is done."""
    return _page(
        "Authentication complete",
        "<h1>Thank you</h1>\n<p>You may now close this window and return to the "
        f"application.</p>\n{_AUTH_DONE_SCRIPT}",
    )


def uia_wrong_user_page(user_id: str, server_name: str) -> str:
    """The SSO account was not the one the session is for."""
    return _page(
        "Wrong account",
        "<h1>Wrong account</h1>\n"
        f"<p>You signed in with an account that is not {escape(user_id or 'the account')} on "
        f"{escape(server_name)}, the account this operation is for. The operation will be "
        "refused; start it again and sign in with the right account.</p>",
    )


def pick_idp_page(
    client_redirect_url: str, providers: Sequence[IdentityProvider], server_name: str
) -> str:
    """Lists the providers; each link goes on to that provider (Synapse's
    ``/_synapse/client/pick_idp``, which links to ``pick_idp?idp=...``)."""
    items = []
    for provider in providers:
        query = urlencode({"redirectUrl": client_redirect_url, "idp": provider.id})
        items.append(
            f'<li><a href="pick_idp?{escape(query, quote=True)}">{escape(provider.name)}</a></li>'
        )
    return _page(
        "Choose how to sign in",
        f"<h1>Sign in to {escape(server_name)}</h1>\n"
        "<p>Choose how you want to sign in:</p>\n"
        f"<ul>\n{chr(10).join(items)}\n</ul>",
    )
