"""OAuth2 sign-in (Microsoft, Google, generic providers) and account login glue.

    from mailbag.auth import get_access_token, login_imap
    token = get_access_token(account)        # refreshed as needed; AuthError to sign in again
    login_imap(client, account)              # password or OAuth2, as the account says

Sign-in flows: `sign_in(account, device=...)`; provider definitions in
`mailbag.auth.providers`. Nothing here prints: callers show URLs and codes.

The names load on first use (PEP 562 `__getattr__` below): a password login
(`mailbag sync`) goes through `mailbag.auth.login` without paying for the HTTP
client and browser code of the OAuth2 flows. To export a name, add it to the
TYPE_CHECKING imports and to `__all__`; `__getattr__` finds its module.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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

# where exported names live, cheapest module first
_MODULES = ("login", "providers", "flows", "tokens")


def __getattr__(name: str) -> Any:
    # (importlib loads here: a login through `mailbag.auth.login` never needs it)
    import importlib

    if name in __all__:
        for module in _MODULES:
            loaded = importlib.import_module(f"{__name__}.{module}")
            if hasattr(loaded, name):
                value = getattr(loaded, name)
                globals()[name] = value
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
