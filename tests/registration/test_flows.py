"""The registration flows, computed without a server (homeserver/registration/flows.py)."""

from __future__ import annotations

import pytest

from homeserver.registration.flows import (
    RegistrationFlowsError,
    RegistrationPolicy,
    registration_flows,
)

DUMMY = "m.login.dummy"
EMAIL = "m.login.email.identity"
MSISDN = "m.login.msisdn"
TOKEN = "m.login.registration_token"
CAPTCHA = "m.login.recaptcha"
TERMS = "m.login.terms"


def flows(email: bool = False, msisdn: bool = False, **policy: object) -> list[list[str]]:
    return registration_flows(
        RegistrationPolicy(**policy),  # type: ignore[arg-type]
        email_available=email,
        msisdn_available=msisdn,
    )


def test_open_registration_is_one_dummy_flow() -> None:
    assert flows() == [[DUMMY]]


def test_email_and_msisdn_available() -> None:
    assert flows(email=True) == [[DUMMY], [EMAIL]]
    assert flows(msisdn=True) == [[DUMMY], [MSISDN]]
    assert flows(email=True, msisdn=True) == [[DUMMY], [EMAIL], [MSISDN], [MSISDN, EMAIL]]


def test_required_third_party_ids() -> None:
    both = {"email": True, "msisdn": True}
    assert flows(**both, registrations_require_3pid=["email"]) == [[EMAIL], [MSISDN, EMAIL]]
    assert flows(**both, registrations_require_3pid=["msisdn"]) == [[MSISDN], [MSISDN, EMAIL]]
    assert flows(**both, registrations_require_3pid=["email", "msisdn"]) == [[MSISDN, EMAIL]]


def test_disable_msisdn_registration_hides_and_unrequires_phone_numbers() -> None:
    assert flows(email=True, msisdn=True, disable_msisdn_registration=True) == [[DUMMY], [EMAIL]]
    assert flows(
        email=True, registrations_require_3pid=["msisdn"], disable_msisdn_registration=True
    ) == [[DUMMY], [EMAIL]]


def test_required_third_party_id_that_cannot_be_verified() -> None:
    with pytest.raises(RegistrationFlowsError, match="email"):
        flows(registrations_require_3pid=["email"])
    with pytest.raises(RegistrationFlowsError, match="phone"):
        flows(email=True, registrations_require_3pid=["msisdn"])


def test_stages_in_front_of_every_flow_in_synapse_order() -> None:
    assert flows(
        email=True,
        user_consent_at_registration=True,
        enable_registration_captcha=True,
        registration_requires_token=True,
    ) == [[TOKEN, CAPTCHA, TERMS, DUMMY], [TOKEN, CAPTCHA, TERMS, EMAIL]]
    assert flows(enable_registration_captcha=True) == [[CAPTCHA, DUMMY]]
    assert flows(user_consent_at_registration=True) == [[TERMS, DUMMY]]
    assert flows(registration_requires_token=True) == [[TOKEN, DUMMY]]


def test_token_bypass_flow() -> None:
    assert flows(
        email=True, registrations_require_3pid=["email"], enable_registration_token_3pid_bypass=True
    ) == [[EMAIL], [TOKEN]]
    # a flow that already has the token does not get it twice
    assert flows(
        email=True,
        registrations_require_3pid=["email"],
        enable_registration_token_3pid_bypass=True,
        registration_requires_token=True,
        enable_registration_captcha=True,
    ) == [[TOKEN, CAPTCHA, EMAIL], [CAPTCHA, TOKEN]]
