"""``POST /_matrix/client/v1/appservice/{appserviceId}/ping`` (client-server
"Application service ping"): a service asks the homeserver to call its
``/_matrix/app/v1/ping``, to check that the homeserver can reach it."""

from __future__ import annotations

from collections.abc import Callable

from homeserver.appservice.api import AppServiceTimeout, AppServiceUnreachable
from homeserver.appservice.registration import ApplicationService
from homeserver.appservice.service import AppServices
from homeserver.errors import Forbidden, MatrixError

# Called with a service that answered a ping (its transaction queue may retry now).
PingHook = Callable[[ApplicationService], None]


class AppServicePinger:
    def __init__(self, appservices: AppServices) -> None:
        self._appservices = appservices
        self.answered_hooks: list[PingHook] = []

    async def ping(
        self, caller: ApplicationService | None, appservice_id: str, transaction_id: str | None
    ) -> int:
        """The round trip in milliseconds. Only the service itself may ask (M_FORBIDDEN);
        M_URL_NOT_SET without a url; 502 M_BAD_STATUS (with ``status`` and ``body``)
        when it answers an error, 502 M_CONNECTION_FAILED when it cannot be reached,
        504 M_CONNECTION_TIMEOUT when it does not answer in time."""
        if caller is None:
            raise Forbidden("Only application services can use the /appservice/ping endpoint")
        if caller.id != appservice_id:
            raise Forbidden("Mismatching application service ID in path")
        if caller.url is None:
            raise MatrixError(
                400, "M_URL_NOT_SET", "The application service does not have a URL set"
            )
        try:
            duration_ms = await self._appservices.client.ping(caller, transaction_id)
        except AppServiceTimeout as exc:
            raise MatrixError(504, "M_CONNECTION_TIMEOUT", str(exc)) from None
        except AppServiceUnreachable as exc:
            if exc.status is None:
                raise MatrixError(502, "M_CONNECTION_FAILED", str(exc)) from None
            raise MatrixError(
                502,
                "M_BAD_STATUS",
                f"Ping returned status {exc.status}",
                extra={"status": exc.status, "body": exc.text},
            ) from None
        for hook in self.answered_hooks:
            hook(caller)
        return duration_ms
