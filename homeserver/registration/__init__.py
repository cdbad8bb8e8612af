"""Registration guards: the flows of POST /register, the captcha and terms stages,
and the privacy policy users agree to (``user_consent``)."""

from homeserver.registration.captcha import RecaptchaVerifier
from homeserver.registration.consent import ConsentNotGiven, ConsentService
from homeserver.registration.flows import (
    RegistrationFlowsError,
    RegistrationPolicy,
    registration_flows,
)
from homeserver.registration.stages import RegistrationStages

__all__ = [
    "ConsentNotGiven",
    "ConsentService",
    "RecaptchaVerifier",
    "RegistrationFlowsError",
    "RegistrationPolicy",
    "RegistrationStages",
    "registration_flows",
]
