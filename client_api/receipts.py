"""Receipts and read markers (client-server API: Receipts, Fully read markers)."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.errors import InvalidParam
from homeserver.http.body import get_str, json_object
from homeserver.receipts import READ, READ_PRIVATE, RECEIPT_TYPES

FULLY_READ = "m.fully_read"


class ReceiptHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def post_receipt(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}
        (operation postReceipt)."""
        requester = await self._ctx.requester(request)
        body = await json_object(request, allow_empty=True)
        room_id = request.match_info["roomId"]
        receipt_type = request.match_info["receiptType"]
        event_id = request.match_info["eventId"]
        thread_id = body.get("thread_id")
        if "thread_id" in body and (not isinstance(thread_id, str) or not thread_id):
            raise InvalidParam("thread_id field must be a non-empty string")
        if receipt_type == FULLY_READ:
            if thread_id is not None:
                raise InvalidParam("thread_id is not allowed for m.fully_read")
            await self._ctx.receipts.set_read_markers(
                requester.user_id, room_id, event_id, None, None
            )
        elif receipt_type in RECEIPT_TYPES:
            await self._ctx.receipts.send_receipt(
                requester.user_id, room_id, receipt_type, event_id, thread_id
            )
        else:
            raise InvalidParam(f"Receipt type must be {READ}, {READ_PRIVATE} or {FULLY_READ}")
        await self._ctx.presence.bump_active(requester.user_id)
        return json_response({})

    async def set_read_markers(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/read_markers (operation setReadMarker)."""
        requester = await self._ctx.requester(request)
        body = await json_object(request)
        await self._ctx.receipts.set_read_markers(
            requester.user_id,
            request.match_info["roomId"],
            get_str(body, FULLY_READ, None),
            get_str(body, READ, None),
            get_str(body, READ_PRIVATE, None),
        )
        await self._ctx.presence.bump_active(requester.user_id)
        return json_response({})
