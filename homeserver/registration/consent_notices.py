"""The server notice asking for consent (``user_consent.server_notice_content``): when
a user who has not agreed to the current policy version syncs, they get the notice
once per version in their server notices room, its strings with ``%(consent_uri)s``
filled in with their link to the policy page, as Synapse sends it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from homeserver.registration.consent import ConsentService, fill_consent_uri
from homeserver.server_notices import ServerNotices
from storage.stores import Stores

logger = logging.getLogger(__name__)


def with_consent_uri(value: Any, uri: str) -> Any:
    """``value`` (the configured content) with every string's ``%(consent_uri)s``
    filled in, at any depth."""
    if isinstance(value, str):
        return fill_consent_uri(value, uri)
    if isinstance(value, Mapping):
        return {key: with_consent_uri(item, uri) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [with_consent_uri(item, uri) for item in value]
    return value


class ConsentServerNotices:
    def __init__(self, consent: ConsentService, notices: ServerNotices, stores: Stores) -> None:
        self._consent = consent
        self._notices = notices
        self._stores = stores
        self._sending: set[str] = set()  # users being sent the notice now

    @property
    def enabled(self) -> bool:
        return self._consent.config.server_notice_content is not None and self._notices.enabled

    async def on_user_syncing(self, user_id: str) -> None:
        """Send ``user_id`` the notice if they have not agreed to the current version
        and were not sent it for this version yet."""
        content = self._consent.config.server_notice_content
        if content is None or not self._notices.enabled or user_id in self._sending:
            return
        if user_id == self._notices.system_user_id:
            return
        record = await self._stores.consent.get(user_id)
        version = self._consent.version
        if record is None or version in (record.consent_version, record.consent_server_notice_sent):
            return
        if record.is_guest and not self._consent.config.send_server_notice_to_guests:
            return
        self._sending.add(user_id)
        try:
            localpart = user_id[1:].split(":", 1)[0]
            uri = self._consent.consent_uri(localpart)
            await self._notices.send(user_id, with_consent_uri(content, uri))
            await self._stores.consent.set_server_notice_sent(user_id, version)
        except Exception:
            # the sync goes on; the next one tries again
            logger.exception("could not send the consent server notice to %s", user_id)
        finally:
            self._sending.discard(user_id)
