"""Google reCAPTCHA checks of the ``m.login.recaptcha`` registration stage.

The client's captcha response goes, with the site's secret key and the client's
address, form-encoded to ``recaptcha_siteverify_api``; the stage passes when the
answer says ``"success": true`` (the hostname is not checked: any client may show
the captcha, as in Synapse). The request obeys the outbound address policy
(``ip_range_blacklist`` / ``ip_range_whitelist``) and the outbound TLS setting.
The secret key and the responses are never logged.
"""

from __future__ import annotations

import json
import logging
import ssl
from typing import Any, Final

import aiohttp
from yarl import URL

from homeserver.errors import MatrixError
from homeserver.media.preview import AddressFilter, FilteringResolver

logger = logging.getLogger(__name__)

TIMEOUT_S: Final = 10.0
MAX_ANSWER_BYTES: Final = 64 * 1024


class CaptchaFailed(MatrixError):
    """401 M_UNAUTHORIZED: the captcha was not solved (or could not be checked)."""

    def __init__(self) -> None:
        super().__init__(401, "M_UNAUTHORIZED", "Captcha authentication failed")


class CaptchaNeeded(MatrixError):
    """400 M_CAPTCHA_NEEDED: the stage was sent without its ``response``."""

    def __init__(self) -> None:
        super().__init__(400, "M_CAPTCHA_NEEDED", "Captcha response is required")


class RecaptchaVerifier:
    """Asks the siteverify endpoint whether a captcha response is good."""

    def __init__(
        self,
        siteverify_url: str,
        secret: str,
        addresses: AddressFilter,
        *,
        tls: ssl.SSLContext | bool = True,
    ) -> None:
        self._url = URL(siteverify_url)
        self._secret = secret
        self._addresses = addresses
        self._tls = tls

    async def verify(self, response: str, client_ip: str) -> bool:
        """Whether the siteverify endpoint accepts ``response`` from ``client_ip``;
        False when it cannot be reached or answers no JSON object."""
        host = self._url.host or ""
        if self._addresses.refuses_literal(host):
            logger.warning("recaptcha_siteverify_api %s is refused by ip_range_blacklist", host)
            return False
        form = {"secret": self._secret, "response": response, "remoteip": client_ip}
        try:
            # A session per check: captchas are rare, and nothing is left to close.
            async with (
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(
                        resolver=FilteringResolver(self._addresses), ssl=self._tls
                    ),
                    timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
                ) as http,
                http.post(self._url, data=form, allow_redirects=False) as reply,
            ):
                raw = await reply.content.read(MAX_ANSWER_BYTES + 1)
                status = reply.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            logger.warning("recaptcha siteverify at %s unreachable: %s", host, type(exc).__name__)
            return False
        if len(raw) > MAX_ANSWER_BYTES:
            logger.warning("recaptcha siteverify at %s answered too much", host)
            return False
        if status // 100 != 2:
            logger.warning("recaptcha siteverify at %s answered %d", host, status)
            return False
        try:
            answer: Any = json.loads(raw)
        except ValueError:
            logger.warning("recaptcha siteverify at %s answered %d, no JSON", host, status)
            return False
        if not isinstance(answer, dict):
            return False
        success = answer.get("success") is True
        logger.info(
            "%s reCAPTCHA from hostname %s",
            "Successful" if success else "Failed",
            answer.get("hostname"),
        )
        return success
