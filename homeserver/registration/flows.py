"""Which UIA flows POST /register offers (PURE: settings in, flows out).

As Synapse's ``_calculate_registration_flows``: a flow without third-party IDs
(``m.login.dummy``) unless ``registrations_require_3pid`` asks for one; email-only,
phone-only and both flows where those verifications are available; a
registration-token-only flow with ``enable_registration_token_3pid_bypass``; then
``m.login.terms`` (consent required at registration), ``m.login.recaptcha``
(``enable_registration_captcha``) and ``m.login.registration_token``
(``registration_requires_token``) put in front of every flow, in that order, so a
token comes first, then the captcha, then the terms.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

DUMMY: Final = "m.login.dummy"
EMAIL_IDENTITY: Final = "m.login.email.identity"
MSISDN: Final = "m.login.msisdn"
REGISTRATION_TOKEN: Final = "m.login.registration_token"
RECAPTCHA: Final = "m.login.recaptcha"
TERMS: Final = "m.login.terms"


class RegistrationFlowsError(ValueError):
    """The settings ask for a third-party ID the server cannot verify."""


@dataclass(frozen=True, slots=True)
class RegistrationPolicy:
    """The settings that decide the registration flows (Synapse's option names)."""

    registrations_require_3pid: Collection[str] = ()
    disable_msisdn_registration: bool = False
    enable_registration_token_3pid_bypass: bool = False
    user_consent_at_registration: bool = False
    enable_registration_captcha: bool = False
    registration_requires_token: bool = False


def registration_flows(
    policy: RegistrationPolicy, *, email_available: bool, msisdn_available: bool
) -> list[list[str]]:
    """The flows of POST /register, in Synapse's order.

    ``email_available`` / ``msisdn_available``: whether the server can verify an
    email address (``m.login.email.identity``) / a phone number (``m.login.msisdn``).
    Raises RegistrationFlowsError when a required kind cannot be verified."""
    require_email = "email" in policy.registrations_require_3pid
    require_msisdn = "msisdn" in policy.registrations_require_3pid
    show_email = email_available
    show_msisdn = msisdn_available
    if policy.disable_msisdn_registration:
        show_msisdn = False
        require_msisdn = False
    if require_email and not show_email:
        raise RegistrationFlowsError(
            "registrations_require_3pid asks for an email address at registration, "
            "but email validation is not configured"
        )
    if require_msisdn and not show_msisdn:
        raise RegistrationFlowsError(
            "registrations_require_3pid asks for a phone number at registration, "
            "but phone number validation is not configured"
        )

    flows: list[list[str]] = []
    if not require_email and not require_msisdn:
        # Also when a captcha comes first: a client completing only the captcha
        # must not be taken to have meant a flow with a third-party ID.
        flows.append([DUMMY])
    if show_email and not require_msisdn:
        flows.append([EMAIL_IDENTITY])
    if show_msisdn and not require_email:
        flows.append([MSISDN])
    if show_email and show_msisdn:
        flows.append([MSISDN, EMAIL_IDENTITY])
    if policy.enable_registration_token_3pid_bypass:
        flows.append([REGISTRATION_TOKEN])

    if policy.user_consent_at_registration:
        flows = [[TERMS, *flow] for flow in flows]
    if policy.enable_registration_captcha:
        flows = [[RECAPTCHA, *flow] for flow in flows]
    if policy.registration_requires_token:
        flows = [
            flow if REGISTRATION_TOKEN in flow else [REGISTRATION_TOKEN, *flow] for flow in flows
        ]
    return flows
