"""MSC4140 delayed events: messages and state a client schedules to be sent later
(Element Call's way to leave a call when the client dies)."""

from homeserver.delayed_events.service import DelayedEventService

__all__ = ["DelayedEventService"]
