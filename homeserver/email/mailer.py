"""Sending mail over SMTP as Synapse's ``email`` section describes.

``force_tls``: TLS from the first byte (SMTPS). Otherwise, with ``enable_tls``, the
connection is upgraded by STARTTLS when the server offers it, and
``require_transport_security`` refuses to send when it does not. ``tlsname`` is the
name the server's certificate must carry (default ``smtp_host``). The SMTP password
is never logged.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from typing import TYPE_CHECKING

from homeserver.config.email import EmailConfig

# aiosmtplib is imported when the first mail is sent.
if TYPE_CHECKING:
    import aiosmtplib

logger = logging.getLogger(__name__)

TIMEOUT_S = 30.0


class MailDeliveryError(Exception):
    """The mail could not be handed to the SMTP server."""


class SmtpMailer:
    def __init__(self, config: EmailConfig, *, tls_context: ssl.SSLContext | None = None) -> None:
        self._config = config
        self._tls = tls_context or ssl.create_default_context()

    def message(self, to: str, subject: str, text: str, html: str) -> EmailMessage:
        """A multipart/alternative mail: plain text first, then HTML."""
        sender = self._config.notif_from or "homeserver@localhost"
        message = EmailMessage()
        message["From"] = sender
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = make_msgid()
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        return message

    async def send(self, to: str, subject: str, text: str, html: str) -> None:
        import aiosmtplib

        message = self.message(to, subject, text, html)
        settings = self._config
        tls_name = settings.tlsname or settings.smtp_host
        try:
            if settings.force_tls:
                client = aiosmtplib.SMTP(
                    hostname=tls_name,
                    use_tls=True,
                    tls_context=self._tls,
                    timeout=TIMEOUT_S,
                    sock=await _connect(settings.smtp_host, settings.smtp_port),
                )
                await client.connect()
            else:
                client = aiosmtplib.SMTP(
                    hostname=settings.smtp_host,
                    port=settings.smtp_port,
                    start_tls=False,
                    timeout=TIMEOUT_S,
                )
                await client.connect()
            try:
                await self._secure(client, tls_name)
                if settings.smtp_user is not None and settings.smtp_pass is not None:
                    await client.login(settings.smtp_user, settings.smtp_pass)
                await client.send_message(message)
            finally:
                client.close()
        except (aiosmtplib.SMTPException, OSError) as exc:
            logger.warning("could not send mail via %s: %s", settings.smtp_host, type(exc).__name__)
            raise MailDeliveryError(str(exc)) from None

    async def _secure(self, client: aiosmtplib.SMTP, tls_name: str) -> None:
        """STARTTLS when asked for and offered (or required)."""
        settings = self._config
        if settings.force_tls or not settings.enable_tls:
            return
        import aiosmtplib

        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            # an old server that only knows HELO: no extensions, so no STARTTLS
            await client.helo()
        if client.supports_extension("starttls"):
            await client.starttls(server_hostname=tls_name, tls_context=self._tls)
        elif settings.require_transport_security:
            raise MailDeliveryError("the SMTP server does not offer STARTTLS")


async def _connect(host: str, port: int) -> socket.socket:
    """A connected socket to ``host:port`` (for implicit TLS checked against
    ``tlsname``, which may differ from the host connected to)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    last: OSError | None = None
    for family, kind, proto, _name, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, address), TIMEOUT_S)
            return sock
        except (OSError, TimeoutError) as exc:
            sock.close()
            last = exc if isinstance(exc, OSError) else OSError(str(exc))
    raise last or OSError(f"no address for {host}")
