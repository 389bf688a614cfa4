"""OAuth2 sign-in (Microsoft, Google, generic providers) and account login glue.

    from mailbag.auth import get_access_token, login_imap
    token = get_access_token(account)        # refreshed as needed; AuthError to sign in again
    login_imap(client, account)              # password or OAuth2, as the account says

Sign-in flows: `sign_in(account, device=...)`; provider definitions in
`mailbag.auth.providers`. Nothing here prints: callers show URLs and codes.

The names load on first use (PEP 562): a password login (`mailbag sync`) goes through
`login_imap` without paying for the HTTP client and browser code of the OAuth2 flows.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailbag.auth.flows import DeviceCode, TokenSet
    from mailbag.auth.login import login_imap, login_pop3, login_smtp, sasl_token_login
    from mailbag.auth.providers import Provider, guess_provider, registration_help
    from mailbag.auth.tokens import (
        SignOut,
        account_settings,
        get_access_token,
        invalidate,
        provider_for,
        sign_in,
        sign_out,
    )

_WHERE = {
    "DeviceCode": "flows",
    "TokenSet": "flows",
    "login_imap": "login",
    "login_pop3": "login",
    "login_smtp": "login",
    "sasl_token_login": "login",
    "Provider": "providers",
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

__all__ = [
    "DeviceCode",
    "Provider",
    "SignOut",
    "TokenSet",
    "account_settings",
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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
