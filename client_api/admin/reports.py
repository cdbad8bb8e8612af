"""Event reports admin endpoints in Synapse's shape (admins only).

- ``GET /_synapse/admin/v1/event_reports``: paginated with ``from`` / ``limit``
  (``next_token``, ``total``), newest first unless ``dir=f``, filtered by reporter
  ``user_id``, ``room_id`` and ``event_sender_user_id``.
- ``GET /_synapse/admin/v1/event_reports/{reportId}``: one report with ``event_json``.
- ``DELETE /_synapse/admin/v1/event_reports/{reportId}``: close it.
- ``GET /_synapse/admin/v1/user_reports`` (filtered by reporter ``user_id`` and
  ``target_user_id``), ``GET`` and ``DELETE /_synapse/admin/v1/user_reports/{reportId}``:
  the same for reports against users.
"""

from __future__ import annotations

from aiohttp import web

from client_api.admin.auth import require_admin
from client_api.admin.paging import direction_of
from client_api.context import ClientContext
from client_api.routes import Route
from client_api.versions import json_response
from homeserver.errors import InvalidParam
from homeserver.http.body import query_int
from homeserver.reports import ReportService

# report IDs are 64-bit database integers
MAX_REPORT_ID = 2**63 - 1


def report_id_of(request: web.Request) -> int:
    raw = request.match_info["reportId"]
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_REPORT_ID:
        raise InvalidParam(
            "The report_id parameter must be a string representing a positive integer."
        )
    return int(raw)


class ReportAdminHandlers:
    def __init__(self, ctx: ClientContext, reports: ReportService) -> None:
        self._ctx = ctx
        self._reports = reports

    async def list_event_reports(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/event_reports."""
        await require_admin(self._ctx, request)
        start = query_int(request, "from", 0)
        limit = query_int(request, "limit", 100)
        newest_first = direction_of(request, "b") == "b"
        reports, total = await self._reports.event_reports(
            start,
            limit,
            newest_first=newest_first,
            user_id=request.query.get("user_id"),
            room_id=request.query.get("room_id"),
            event_sender=request.query.get("event_sender_user_id"),
        )
        body: dict[str, object] = {
            "event_reports": [r.to_json() for r in reports],
            "total": total,
        }
        if start + limit < total:
            body["next_token"] = start + len(reports)
        return json_response(body)

    async def get_event_report(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/event_reports/{reportId}."""
        await require_admin(self._ctx, request)
        report = await self._reports.event_report(report_id_of(request))
        return json_response({**report.to_json(), "event_json": report.event_json})

    async def delete_event_report(self, request: web.Request) -> web.Response:
        """DELETE /_synapse/admin/v1/event_reports/{reportId}."""
        await require_admin(self._ctx, request)
        await self._reports.delete_event_report(report_id_of(request))
        return json_response({})

    async def list_user_reports(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/user_reports."""
        await require_admin(self._ctx, request)
        start = query_int(request, "from", 0)
        limit = query_int(request, "limit", 100)
        newest_first = direction_of(request, "b") == "b"
        reports, total = await self._reports.user_reports(
            start,
            limit,
            newest_first=newest_first,
            user_id=request.query.get("user_id"),
            target_user_id=request.query.get("target_user_id"),
        )
        body: dict[str, object] = {"user_reports": [r.to_json() for r in reports], "total": total}
        if start + limit < total:
            body["next_token"] = start + len(reports)
        return json_response(body)

    async def get_user_report(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/user_reports/{reportId}."""
        await require_admin(self._ctx, request)
        report = await self._reports.user_report(report_id_of(request))
        return json_response(report.to_json())

    async def delete_user_report(self, request: web.Request) -> web.Response:
        """DELETE /_synapse/admin/v1/user_reports/{reportId}."""
        await require_admin(self._ctx, request)
        await self._reports.delete_user_report(report_id_of(request))
        return json_response({})


def report_admin_routes(ctx: ClientContext, reports: ReportService) -> list[Route]:
    handlers = ReportAdminHandlers(ctx, reports)
    base = "/_synapse/admin/v1/event_reports"
    users = "/_synapse/admin/v1/user_reports"
    return [
        ("GET", base, handlers.list_event_reports),
        ("GET", f"{base}/{{reportId}}", handlers.get_event_report),
        ("DELETE", f"{base}/{{reportId}}", handlers.delete_event_report),
        ("GET", users, handlers.list_user_reports),
        ("GET", f"{users}/{{reportId}}", handlers.get_user_report),
        ("DELETE", f"{users}/{{reportId}}", handlers.delete_user_report),
    ]
