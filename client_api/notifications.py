"""Listing notifications (client-server API: Push Notifications, getNotifications)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.http.body import query_int

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class NotificationHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def get_notifications(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/notifications (getNotifications)."""
        requester = await self._ctx.requester(request)
        limit = query_int(request, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
        only = request.query.get("only")
        page, next_token = await self._ctx.push.evaluator.notifications(
            requester.user_id, request.query.get("from"), limit, only == "highlight"
        )
        present = [n for n, _event in page]
        serialized = await self._ctx.serializer.serialize(
            [event for _n, event in page],
            user_id=requester.user_id,
            device_id=requester.device_id,
            include_room_id=False,
        )
        # profile_tag: rules carry no profile tags here, so there is none to give;
        # the key is present (null) as Synapse gives it, for clients that expect it
        notifications: list[dict[str, Any]] = [
            {
                "actions": n.action.actions,
                "event": event,
                "profile_tag": None,
                "read": n.read,
                "room_id": n.action.room_id,
                "ts": n.action.ts,
            }
            for n, event in zip(present, serialized, strict=True)
        ]
        body: dict[str, Any] = {"notifications": notifications}
        if next_token is not None:
            body["next_token"] = next_token
        return json_response(body)
