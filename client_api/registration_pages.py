"""The HTML pages of the registration stages' fallbacks (client-server API,
"Fallback") and of the privacy policy. Every value put in a page is escaped."""

from __future__ import annotations

from html import escape
from typing import Final

# The spec's completion script of a fallback page.
_AUTH_DONE_SCRIPT: Final = """<script>
if (window.onAuthDone) {
    window.onAuthDone();
} else if (window.opener && window.opener.postMessage) {
    window.opener.postMessage("authDone", "*");
}
</script>"""


def _page(title: str, body: str, head: str = "") -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n{head}</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _error(error: str | None) -> str:
    return f'<p class="error"><strong>Error: {escape(error)}</strong></p>\n' if error else ""


def recaptcha_page(session: str, action: str, sitekey: str, error: str | None = None) -> str:
    """Shows the captcha; solving it posts the form back to ``action``."""
    head = (
        '<script src="https://www.recaptcha.net/recaptcha/api.js" async defer></script>\n'
        "<script>\nfunction captchaDone() {\n"
        "    document.getElementById('registrationForm').submit();\n}\n</script>\n"
    )
    body = (
        f'<form id="registrationForm" method="post" action="{escape(action, quote=True)}">\n'
        f"{_error(error)}"
        "<p>Please verify that you are not a robot.</p>\n"
        f'<input type="hidden" name="session" value="{escape(session, quote=True)}">\n'
        f'<div class="g-recaptcha" data-sitekey="{escape(sitekey, quote=True)}" '
        'data-callback="captchaDone"></div>\n'
        '<noscript><input type="submit" value="All Done"></noscript>\n</form>'
    )
    return _page("Authentication", body, head)


def terms_page(session: str, action: str, terms_url: str, error: str | None = None) -> str:
    """Asks the user to agree to the privacy policy at ``terms_url``."""
    body = (
        f'<form id="registrationForm" method="post" action="{escape(action, quote=True)}">\n'
        f"{_error(error)}"
        "<p>Please click the button below if you agree to the "
        f'<a href="{escape(terms_url, quote=True)}">privacy policy of this homeserver.</a></p>\n'
        f'<input type="hidden" name="session" value="{escape(session, quote=True)}">\n'
        '<input type="submit" value="Agree">\n</form>'
    )
    return _page("Authentication", body)


def registration_token_page(session: str, action: str, error: str | None = None) -> str:
    """Asks for a registration token."""
    body = (
        f'<form id="registrationForm" method="post" action="{escape(action, quote=True)}">\n'
        f"{_error(error)}"
        "<p>Please enter a registration token.</p>\n"
        f'<input type="hidden" name="session" value="{escape(session, quote=True)}">\n'
        '<input type="text" name="token">\n<input type="submit" value="Authenticate">\n</form>'
    )
    return _page("Authentication", body)


def fallback_success_page() -> str:
    """Tells the client the stage is done."""
    return _page(
        "Authentication complete",
        "<h1>Thank you</h1>\n<p>You may now close this window and return to the "
        f"application.</p>\n{_AUTH_DONE_SCRIPT}",
    )
