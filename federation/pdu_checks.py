"""Steps 1-3 of s2s "Checks performed on receipt of a PDU", for a batch of PDUs.

1. format (``validate_pdu`` of the room version: fields, sizes, reference lists):
   an invalid PDU is dropped, nothing is stored;
2. signatures (``KeyRing.verify_events``: one key fetch for the batch; the sender's
   server must have signed, for v1/v2 also the event ID's server, for restricted
   joins the authorising server): a PDU without them is dropped;
3. content hash (``event_after_hash_check``): on mismatch the redacted copy is kept
   and processed instead.

The room version is the caller's (the room the PDU claims, as we hold it). Nothing
here raises for bad input: every PDU gets a :class:`CheckedPdu` or a
:class:`DroppedPdu` naming the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from homeserver.events import (
    Event,
    EventValidationError,
    RoomVersion,
    SignatureFailure,
    event_after_hash_check,
    validate_pdu,
)

logger = logging.getLogger(__name__)

# Batches larger than this are checked in a worker thread, so that a big room's state
# (tens of thousands of events) does not stall the event loop for seconds.
THREAD_BATCH = 200

T = TypeVar("T")


async def off_loop_if_large(
    size: int, fn: Callable[..., T], *args: Any, above: int = THREAD_BATCH
) -> T:
    """``fn(*args)``, in a worker thread when the batch it works on holds more than
    ``above`` items (a big room's state: off the event loop), else right here."""
    if size > above:
        return await asyncio.to_thread(fn, *args)
    return fn(*args)


class EventSignatureVerifier(Protocol):
    """What the checks need of the key ring (``federation.keyring.KeyRing``)."""

    async def verify_events(self, events: Sequence[Event]) -> list[list[SignatureFailure]]: ...


@dataclass(frozen=True, slots=True)
class CheckedPdu:
    """A PDU that passed format and signature checks (``event`` possibly redacted)."""

    event: Event
    redacted_for_hash: bool


@dataclass(frozen=True, slots=True)
class DroppedPdu:
    """A PDU dropped before storing; ``event_id`` when it could be determined."""

    event_id: str | None
    reason: str


def pdu_event_id(pdu: Any, room_version: RoomVersion | None) -> str | None:
    """The event ID of a raw PDU, if it can be determined (for per-PDU results)."""
    if not isinstance(pdu, Mapping):
        return None
    if room_version is not None:
        try:
            return Event.from_pdu(pdu, room_version).event_id
        except (ValueError, TypeError):
            return None
    raw = pdu.get("event_id")
    return raw if isinstance(raw, str) else None


def parse_pdu(pdu: Any, room_version: RoomVersion) -> Event | DroppedPdu:
    """Step 1: an :class:`Event` of ``room_version``, or why the PDU is dropped."""
    if not isinstance(pdu, Mapping):
        return DroppedPdu(None, "PDU is not an object")
    try:
        validate_pdu(pdu, room_version)
        return Event.from_pdu(pdu, room_version)
    except EventValidationError as exc:
        return DroppedPdu(pdu_event_id(pdu, room_version), f"Invalid PDU: {exc}")
    except (ValueError, TypeError) as exc:
        return DroppedPdu(None, f"Invalid PDU: {exc}")


async def check_signatures_and_hashes(
    verifier: EventSignatureVerifier, events: Sequence[Event]
) -> list[CheckedPdu | DroppedPdu]:
    """Steps 2 and 3 for ``events``, in order."""
    if not events:
        return []
    try:
        failures = await verifier.verify_events(events)
    except Exception:  # a key fetch problem must not fail the whole transaction
        logger.exception("verifying the signatures of %d events failed", len(events))
        return [DroppedPdu(e.event_id, "Could not verify signatures") for e in events]
    return await off_loop_if_large(len(events), _hash_checked, events, failures)


def _hash_checked(
    events: Sequence[Event], failures: Sequence[Sequence[Any]]
) -> list[CheckedPdu | DroppedPdu]:
    """Step 3 for the events whose signatures checked out (pure: may run in a thread)."""
    results: list[CheckedPdu | DroppedPdu] = []
    for event, problems in zip(events, failures, strict=True):
        if problems:
            reason = "; ".join(p.reason for p in problems)
            logger.info("dropping %s: bad signatures: %s", event.event_id, reason)
            results.append(DroppedPdu(event.event_id, f"Signature check failed: {reason}"))
            continue
        kept = event_after_hash_check(event)
        if kept is not event:
            logger.info("content hash mismatch on %s: keeping the redacted copy", event.event_id)
        results.append(CheckedPdu(kept, kept is not event))
    return results


async def check_pdus(
    verifier: EventSignatureVerifier, pdus: Sequence[Any], room_version: RoomVersion
) -> list[CheckedPdu | DroppedPdu]:
    """Steps 1-3 for PDUs of one room version, in order."""
    parsed = [parse_pdu(p, room_version) for p in pdus]
    valid = [p for p in parsed if isinstance(p, Event)]
    checked = iter(await check_signatures_and_hashes(verifier, valid))
    return [next(checked) if isinstance(p, Event) else p for p in parsed]
