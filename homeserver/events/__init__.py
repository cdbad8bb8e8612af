"""Pure protocol core for room events: no IO, imports nothing else of the project.

Room versions, identifiers, canonical JSON, hashes, event IDs, signatures, redaction,
PDU validation and the authorisation rules. See each module for its spec section.
"""

from .auth_rules import auth_state_from_events, check_auth, check_auth_events
from .auth_selection import StateKey, auth_types_for_event
from .builder import EventBuilder, hash_and_sign
from .canonical import canonical_json, check_strict_json, decode_base64, encode_base64
from .errors import AuthError, EventValidationError, InvalidIdentifier, SignatureError
from .event import Event
from .hashing import (
    add_content_hash,
    check_content_hash,
    compute_event_id,
    content_hash,
    reference_hash,
)
from .identifiers import (
    EventID,
    RoomAlias,
    RoomID,
    UserID,
    is_valid_server_name,
    is_valid_user_id,
    server_name_of,
    split_server_name,
)
from .power_levels import (
    INFINITE_POWER,
    SCALAR_KEYS,
    PowerLevels,
    parse_power_level,
    room_creators,
)
from .redaction import redact, redaction_target_refusal
from .room_versions import (
    KNOWN_ROOM_VERSIONS,
    RECOMMENDED_ROOM_VERSION,
    STABLE_ROOM_VERSIONS,
    EventIdFormat,
    RedactionRules,
    RoomVersion,
    StateResAlgorithm,
)
from .signing import (
    KeyLookup,
    ServerKey,
    SignatureFailure,
    SigningKey,
    key_ids_to_fetch,
    required_signers,
    sign_event_pdu,
    sign_json,
    verify_event_signatures,
    verify_json,
    verify_signed_with_public_key,
)
from .validation import validate_pdu


def event_after_hash_check(event: Event) -> Event:
    """The event to keep after the content hash check.

    Spec: s2s "Validating hashes and signatures on received events": if the content
    hash does not match, the redacted copy is used instead of the full one.
    """
    return event if check_content_hash(event.pdu) else event.redacted()


__all__ = [
    "INFINITE_POWER",
    "KNOWN_ROOM_VERSIONS",
    "RECOMMENDED_ROOM_VERSION",
    "SCALAR_KEYS",
    "STABLE_ROOM_VERSIONS",
    "AuthError",
    "Event",
    "EventBuilder",
    "EventID",
    "EventIdFormat",
    "EventValidationError",
    "InvalidIdentifier",
    "KeyLookup",
    "PowerLevels",
    "RedactionRules",
    "RoomAlias",
    "RoomID",
    "RoomVersion",
    "ServerKey",
    "SignatureError",
    "SignatureFailure",
    "SigningKey",
    "StateKey",
    "StateResAlgorithm",
    "UserID",
    "add_content_hash",
    "auth_state_from_events",
    "auth_types_for_event",
    "canonical_json",
    "check_auth",
    "check_auth_events",
    "check_content_hash",
    "check_strict_json",
    "compute_event_id",
    "content_hash",
    "decode_base64",
    "encode_base64",
    "event_after_hash_check",
    "hash_and_sign",
    "is_valid_server_name",
    "is_valid_user_id",
    "key_ids_to_fetch",
    "parse_power_level",
    "redact",
    "redaction_target_refusal",
    "reference_hash",
    "required_signers",
    "room_creators",
    "server_name_of",
    "sign_event_pdu",
    "sign_json",
    "split_server_name",
    "validate_pdu",
    "verify_event_signatures",
    "verify_json",
    "verify_signed_with_public_key",
]
