"""Users' third-party IDs (email, phone numbers): validation, the account's list,
bindings on identity servers. See ``service``."""

from homeserver.threepids.service import (
    EMAIL_STAGE,
    MSISDN_STAGE,
    ThreepidService,
    ThreepidValidationFailed,
    ValidatedThreepid,
)

__all__ = [
    "EMAIL_STAGE",
    "MSISDN_STAGE",
    "ThreepidService",
    "ThreepidValidationFailed",
    "ValidatedThreepid",
]
