"""Server notices admin endpoints in Synapse's shape (admins only).

- ``POST /_synapse/admin/v1/send_server_notice``
- ``PUT /_synapse/admin/v1/send_server_notice/{txnId}``: a retry with the same
  transaction ID (same admin, same device) sends nothing new.

Body: ``user_id``, ``content``, optional ``type`` (default ``m.room.message``) and
``state_key`` (a state event). 400 when ``server_notices`` is not configured.
"""

from __future__ import annotations

from aiohttp import web

from client_api.admin.auth import require_admin
from client_api.context import ClientContext
from client_api.routes import Route
from client_api.versions import json_response
from homeserver.http.body import get_dict, get_str, json_object
from homeserver.rooms.creator import TxnKey
from homeserver.server_notices import ServerNotices, ServerNoticesNotEnabled


class ServerNoticeAdminHandlers:
    def __init__(self, ctx: ClientContext, notices: ServerNotices) -> None:
        self._ctx = ctx
        self._notices = notices

    async def send_server_notice(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/send_server_notice, and the PUT with a txnId."""
        requester = await require_admin(self._ctx, request)
        body = await json_object(request)
        if not self._notices.enabled:
            raise ServerNoticesNotEnabled()
        user_id = get_str(body, "user_id")
        content = get_dict(body, "content")
        event_type = get_str(body, "type", "m.room.message")
        state_key = get_str(body, "state_key", None)
        txn = None
        txn_id = request.match_info.get("txnId")
        if txn_id is not None:
            # the retry key of the admin's request, on events sent as the system user
            txn = TxnKey(f"{requester.user_id}|{requester.device_id or ''}", txn_id)
        event_id = await self._notices.send(
            user_id, content, event_type=event_type, state_key=state_key, txn=txn
        )
        return json_response({"event_id": event_id})


def server_notice_admin_routes(ctx: ClientContext, notices: ServerNotices) -> list[Route]:
    handlers = ServerNoticeAdminHandlers(ctx, notices)
    path = "/_synapse/admin/v1/send_server_notice"
    return [
        ("POST", path, handlers.send_server_notice),
        ("PUT", f"{path}/{{txnId}}", handlers.send_server_notice),
    ]
