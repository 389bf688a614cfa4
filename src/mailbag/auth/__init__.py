"""OAuth2 sign-in (Microsoft, Google, generic providers) and account login glue.

    from mailbag.auth import get_access_token, login_imap
    token = get_access_token(account)        # refreshed as needed; AuthError to sign in again
    login_imap(client, account)              # password or OAuth2, as the account says

Sign-in flows: `sign_in(account, device=...)`; provider definitions in
`mailbag.auth.providers`. Nothing here prints: callers show URLs and codes.
"""

from mailbag.auth.flows import DeviceCode, TokenSet
from mailbag.auth.login import login_imap, login_pop3, login_smtp, sasl_token_login
from mailbag.auth.providers import (
    Provider,
    discovered_settings,
    guess_provider,
    registration_help,
)
from mailbag.auth.tokens import (
    SignOut,
    account_settings,
    get_access_token,
    invalidate,
    provider_for,
    sign_in,
    sign_out,
)

__all__ = [
    "DeviceCode",
    "Provider",
    "SignOut",
    "TokenSet",
    "account_settings",
    "discovered_settings",
    "get_access_token",
    "guess_provider",
    "invalidate",
    "login_imap",
    "login_pop3",
    "login_smtp",
    "provider_for",
    "registration_help",
    "sasl_token_login",
    "sign_in",
    "sign_out",
]
