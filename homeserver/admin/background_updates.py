"""What Synapse's background updates API reports, for this server.

This server has no background updates: every schema migration runs in full at
start-up, before the server listens. So there is never an update in progress
(``current_updates`` is empty); the ``enabled`` switch is kept, per process and not
across restarts as in Synapse, so that tools that pause and resume updates work.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BackgroundUpdates:
    enabled: bool = True
    # database name -> the update running there; none ever runs here
    current: dict[str, dict[str, object]] = field(default_factory=dict)

    def status(self) -> dict[str, object]:
        return {"enabled": self.enabled, "current_updates": dict(self.current)}
