"""The UIA stages of POST /register and what a completed registration records.

``RegistrationStages`` puts the stage checkers on the UIA service (dummy,
registration token, and where configured the captcha and the terms), holds the
flows ``flows.registration_flows`` computed and the ``params`` the 401 carries.
"""

from __future__ import annotations

from typing import Any

from homeserver.accounts import AccountService
from homeserver.clock import Clock
from homeserver.config import ConfigError, HomeserverConfig
from homeserver.errors import MatrixError
from homeserver.http.outbound_tls import client_tls
from homeserver.media.preview import AddressFilter
from homeserver.registration.captcha import CaptchaFailed, CaptchaNeeded, RecaptchaVerifier
from homeserver.registration.consent import ConsentService
from homeserver.registration.consent_notices import ConsentServerNotices
from homeserver.registration.flows import (
    DUMMY,
    RECAPTCHA,
    REGISTRATION_TOKEN,
    TERMS,
    RegistrationFlowsError,
    RegistrationPolicy,
    registration_flows,
)
from homeserver.uia import UserInteractiveAuth
from storage.stores import Stores


def registration_policy(config: HomeserverConfig) -> RegistrationPolicy:
    consent = config.registration_guards.user_consent
    return RegistrationPolicy(
        registrations_require_3pid=config.registration_guards.registrations_require_3pid,
        disable_msisdn_registration=config.registration_guards.disable_msisdn_registration,
        enable_registration_token_3pid_bypass=config.registration_guards.enable_registration_token_3pid_bypass,
        user_consent_at_registration=consent is not None and consent.require_at_registration,
        enable_registration_captcha=config.registration_guards.enable_registration_captcha,
        registration_requires_token=config.registration_requires_token,
    )


class RegistrationStages:
    def __init__(
        self,
        config: HomeserverConfig,
        uia: UserInteractiveAuth,
        accounts: AccountService,
        *,
        captcha: RecaptchaVerifier | None,
        consent: ConsentService | None,
        email_available: bool,
        msisdn_available: bool,
    ) -> None:
        """Raises flows.RegistrationFlowsError when the settings ask for a
        third-party ID the server cannot verify."""
        self._config = config
        self._accounts = accounts
        self._captcha = captcha
        self.consent = consent
        # set by the server once the server notices exist (user_consent's notice)
        self.consent_notices: ConsentServerNotices | None = None
        self.flows = registration_flows(
            registration_policy(config),
            email_available=email_available,
            msisdn_available=msisdn_available,
        )
        uia.register_stage(DUMMY, self._dummy_stage)
        uia.register_stage(REGISTRATION_TOKEN, self._token_stage)
        if captcha is not None:
            # Checked wherever it is sent, as Synapse does with a configured captcha.
            uia.register_ip_stage(RECAPTCHA, self._recaptcha_stage, outside_flows=True)
        if consent is not None:
            uia.register_stage(TERMS, self._terms_stage)

    def params(self) -> dict[str, Any]:
        """The ``params`` of the stages in the flows that have some."""
        stages = {stage for flow in self.flows for stage in flow}
        params: dict[str, Any] = {}
        if RECAPTCHA in stages:
            params[RECAPTCHA] = {
                "public_key": self._config.registration_guards.recaptcha_public_key
            }
        if TERMS in stages and self.consent is not None:
            params[TERMS] = self.consent.terms_params()
        return params

    async def on_user_syncing(self, user_id: str) -> None:
        """A user is syncing: the consent notice, if they owe consent (Synapse sends
        its server notices from /sync too)."""
        if self.consent_notices is not None:
            await self.consent_notices.on_user_syncing(user_id)

    async def after_registration(self, user_id: str, completed: dict[str, Any]) -> None:
        """A new account whose session agreed to the terms has agreed to the current
        version of the policy."""
        if TERMS in completed and self.consent is not None:
            await self.consent.record(user_id)

    # -- stage checkers ------------------------------------------------------------

    async def _dummy_stage(self, auth: dict[str, Any], user_id: str | None) -> Any:
        return True

    async def _terms_stage(self, auth: dict[str, Any], user_id: str | None) -> Any:
        # Sending the stage is the agreement (the policy's URL was in the params).
        return True

    async def _token_stage(self, auth: dict[str, Any], user_id: str | None) -> Any:
        return await self.check_registration_token(auth.get("token"))

    async def check_registration_token(self, token: object) -> str:
        """The token, if it may still be used; 401 M_MISSING_PARAM / M_UNAUTHORIZED."""
        if not isinstance(token, str) or not token:
            raise MatrixError(401, "M_MISSING_PARAM", "Missing registration token")
        if not await self._accounts.registration_token_valid(token):
            raise MatrixError(401, "M_UNAUTHORIZED", "Invalid registration token")
        return token

    @property
    def captcha_enabled(self) -> bool:
        return self._captcha is not None

    async def check_captcha(self, response: object, client_ip: str) -> None:
        """Raise CaptchaNeeded without a response, CaptchaFailed unless it is good."""
        if self._captcha is None:
            raise CaptchaFailed()
        if not isinstance(response, str) or not response:
            raise CaptchaNeeded()
        if not await self._captcha.verify(response, client_ip):
            raise CaptchaFailed()

    async def _recaptcha_stage(
        self, auth: dict[str, Any], user_id: str | None, client_ip: str
    ) -> Any:
        await self.check_captcha(auth.get("response"), client_ip)
        return True


def registration_stages_from_config(
    config: HomeserverConfig,
    uia: UserInteractiveAuth,
    accounts: AccountService,
    stores: Stores,
    clock: Clock,
    *,
    email_available: bool,
    msisdn_available: bool,
) -> RegistrationStages:
    """The registration stages the config asks for; ConfigError when it requires a
    third-party ID the server cannot verify."""
    captcha = None
    if config.registration_guards.recaptcha_private_key:
        captcha = RecaptchaVerifier(
            config.registration_guards.recaptcha_siteverify_api,
            config.registration_guards.recaptcha_private_key,
            AddressFilter(config.ip_range_blacklist, config.ip_range_whitelist),
            tls=client_tls(config),
        )
    consent = None
    if (
        config.registration_guards.user_consent is not None
        and config.registration_guards.form_secret is not None
    ):
        consent = ConsentService(
            config.registration_guards.user_consent,
            config.registration_guards.form_secret,
            config.public_baseurl_effective,
            config.server_name,
            stores,
            clock,
        )
    try:
        return RegistrationStages(
            config,
            uia,
            accounts,
            captcha=captcha,
            consent=consent,
            email_available=email_available,
            msisdn_available=msisdn_available,
        )
    except RegistrationFlowsError as error:
        raise ConfigError(str(error)) from None
