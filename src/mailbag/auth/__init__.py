"""OAuth2 sign-in (Microsoft, Google, generic providers) and account login glue.

    from mailbag.auth import get_access_token, login_imap
    token = get_access_token(account)        # refreshed as needed; AuthError to sign in again
    login_imap(client, account)              # password or OAuth2, as the account says

Sign-in flows: `sign_in(account, device=...)`; provider definitions in
`mailbag.auth.providers`. Nothing here prints: callers show URLs and codes.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailbag.auth.flows import DeviceCode, TokenSet
    from mailbag.auth.login import (
        login_imap,
        login_pop3,
        login_smtp,
        open_imap,
        open_pop3,
        open_smtp,
        sasl_token_login,
    )
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

#: where each name lives: imported on first use, so that logging in with a password
#: (`mailbag.auth.login`) does not load the OAuth2 HTTP stack (~150 ms)
_HOME = {
    "DeviceCode": "flows",
    "TokenSet": "flows",
    "login_imap": "login",
    "login_pop3": "login",
    "login_smtp": "login",
    "open_imap": "login",
    "open_pop3": "login",
    "open_smtp": "login",
    "sasl_token_login": "login",
    "Provider": "providers",
    "discovered_settings": "providers",
    "guess_provider": "providers",
    "registration_help": "providers",
    "SignOut": "tokens",
    "account_settings": "tokens",
    "get_access_token": "tokens",
    "invalidate": "tokens",
    "provider_for": "tokens",
    "sign_in": "tokens",
    "sign_out": "tokens",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'mailbag.auth' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"mailbag.auth.{home}"), name)
    globals()[name] = value
    return value


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
    "open_imap",
    "open_pop3",
    "open_smtp",
    "provider_for",
    "registration_help",
    "sasl_token_login",
    "sign_in",
    "sign_out",
]
