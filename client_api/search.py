"""POST /_matrix/client/v3/search (client-server API, "Server Side Search")."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.http.body import json_object
from homeserver.search.request import Grouped, groups_of, highlights, parse_search_request


class SearchHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def search(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/search."""
        requester = await self._ctx.requester(request)
        search = parse_search_request(await json_object(request))
        if search is None:
            return json_response({"search_categories": {}})
        page = await self._ctx.search.search(
            requester.user_id, search, request.query.get("next_batch")
        )
        serializer = self._ctx.serializer
        user, device = requester.user_id, requester.device_id
        events = await serializer.serialize(
            [r.event for r in page.results], user_id=user, device_id=device
        )
        results: list[dict[str, Any]] = []
        for result, event in zip(page.results, events, strict=True):
            item: dict[str, Any] = {"rank": result.rank, "result": event}
            if result.context is not None:
                context = result.context
                item["context"] = {
                    "events_before": await serializer.serialize(
                        context.before, user_id=user, device_id=device
                    ),
                    "events_after": await serializer.serialize(
                        context.after, user_id=user, device_id=device
                    ),
                    "start": context.start,
                    "end": context.end,
                }
                if search.event_context is not None and search.event_context.include_profile:
                    item["context"]["profile_info"] = context.profiles
            results.append(item)
        texts = [
            str(r.event.event.content.get(k.removeprefix("content."), ""))
            for r in page.results
            for k in search.keys
        ]
        body: dict[str, Any] = {
            "results": results,
            "count": page.count,
            "highlights": highlights(search.words, texts),
        }
        if page.next_batch is not None:
            body["next_batch"] = page.next_batch
        if search.group_by:
            grouped = [
                Grouped(r.event.event_id, r.event.event.room_id, r.event.event.sender, r.rank)
                for r in page.results
            ]
            body["groups"] = groups_of(search.group_by, grouped, page.next_batch)
        if search.include_state:
            body["state"] = {
                room_id: await serializer.serialize(state, user_id=user, device_id=device)
                for room_id, state in page.state.items()
            }
        return json_response({"search_categories": {"room_events": body}})
