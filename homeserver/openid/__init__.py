"""OpenID: a user proves who they are to a third party (an integration manager, a
widget) without giving it their access token.

The client asks for a token (``POST /user/{userId}/openid/request_token``), hands it
to the third party, which asks the user's homeserver whose it is at
``GET /_matrix/federation/v1/openid/userinfo`` (served by the ``federation`` and the
``openid`` listener resources, as Synapse). Tokens last an hour, as Synapse's.
"""

from homeserver.openid.service import OPENID_TOKEN_LIFETIME_MS, OpenIdService

__all__ = ["OPENID_TOKEN_LIFETIME_MS", "OpenIdService"]
