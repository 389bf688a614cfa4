"""OAuth2 providers: where to sign in, which scopes to ask for, which client to use.

A `Provider` is the fully resolved description a flow needs. It is built from
the built-in definitions (Microsoft, Google), the account's `[accounts.NAME.oauth2]`
table, the provider-wide `[oauth2.PROVIDER]` table and, last and strongest,
environment variables `MAILBAG_OAUTH2_<PROVIDER>_<FIELD>` (so tests and
unusual setups can point any provider at another server without editing files).

The project owns no client IDs: the user registers an application with the
provider and gives its ID. When none is set, the error says exactly how.
This module does no I/O beyond reading the environment mapping it is given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from mailbag.config.model import OAuth2Settings
from mailbag.errors import ConfigError
from mailbag.record import field_names, replace

__all__ = [
    "GOOGLE_SCOPES",
    "MICROSOFT_SCOPES",
    "Provider",
    "builtin_settings",
    "discovered_settings",
    "guess_provider",
    "registration_help",
    "resolve_provider",
]

MICROSOFT_SCOPES = (
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/POP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
    "offline_access",
)
GOOGLE_SCOPES = ("https://mail.google.com/",)
MICROSOFT_TENANTS = ("common", "consumers", "organizations")

#: domains whose mail is hosted by a provider we know (others: ask the user)
_MICROSOFT_DOMAINS = frozenset(
    {"outlook.com", "hotmail.com", "live.com", "msn.com", "outlook.de", "hotmail.de"}
)
_GOOGLE_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
_MICROSOFT_HOSTS = ("outlook.office365.com", "smtp-mail.outlook.com", "smtp.office365.com")
_GOOGLE_HOSTS = ("imap.gmail.com", "pop.gmail.com", "smtp.gmail.com")


@dataclass(frozen=True)
class Provider:
    """Everything a sign-in flow needs, resolved."""

    name: str  # "microsoft" | "google" | "generic"
    client_id: str
    client_secret: str | None
    scopes: tuple[str, ...]
    authorize_url: str
    token_url: str
    device_url: str = ""
    revocation_url: str = ""
    #: extra query parameters for the authorization request
    authorize_params: Mapping[str, str] = field(default_factory=dict)

    @property
    def scope(self) -> str:
        return " ".join(self.scopes)


def builtin_settings(name: str, tenant: str = "") -> OAuth2Settings:
    """The endpoints and scopes a provider publishes (no client: that is the user's)."""
    if name == "microsoft":
        tenant = tenant or "common"
        base = f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0"
        return OAuth2Settings(
            provider="microsoft",
            tenant=tenant,
            scopes=MICROSOFT_SCOPES,
            issuer=f"https://login.microsoftonline.com/{tenant}/v2.0",
            authorize_url=f"{base}/authorize",
            token_url=f"{base}/token",
            device_url=f"{base}/devicecode",
        )
    if name == "google":
        return OAuth2Settings(
            provider="google",
            scopes=GOOGLE_SCOPES,
            issuer="https://accounts.google.com",
            authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
            token_url="https://oauth2.googleapis.com/token",  # noqa: S106 - a URL
            device_url="https://oauth2.googleapis.com/device/code",
            revocation_url="https://oauth2.googleapis.com/revoke",
        )
    return OAuth2Settings(provider="generic")


#: sign-in hosts of the built-in providers, as autoconfig `<oAuth2>` blocks name them
_ISSUER_HOSTS = {
    "accounts.google.com": "google",
    "oauth2.googleapis.com": "google",
    "www.googleapis.com": "google",
    "login.microsoftonline.com": "microsoft",
    "login.live.com": "microsoft",
}


def discovered_settings(
    issuer: str, scopes: tuple[str, ...], authorize_url: str, token_url: str
) -> OAuth2Settings:
    """OAuth2 settings from a provider's published `<oAuth2>` block (autoconfig, ISPDB).

    Microsoft and Google map to their built-in definitions (which also know the
    device and revocation endpoints); anyone else becomes a generic provider with
    exactly these endpoints and scopes. The client ID is still the user's.
    """
    for value in (issuer, authorize_url, token_url):
        host = (urlsplit(value).hostname if "//" in value else value.strip().lower()) or ""
        if host in _ISSUER_HOSTS:
            return OAuth2Settings(provider=_ISSUER_HOSTS[host])
    return OAuth2Settings(
        provider="generic",
        scopes=scopes,
        issuer=issuer,
        authorize_url=authorize_url,
        token_url=token_url,
    )


def guess_provider(email: str, host: str = "") -> str:
    """microsoft, google or generic, from the address and the server name."""
    domain = email.rpartition("@")[2].lower()
    host = host.lower()
    if domain in _MICROSOFT_DOMAINS or host in _MICROSOFT_HOSTS:
        return "microsoft"
    if domain in _GOOGLE_DOMAINS or host in _GOOGLE_HOSTS:
        return "google"
    return "generic"


def _from_env(name: str, env: Mapping[str, str]) -> dict[str, object]:
    prefix = f"MAILBAG_OAUTH2_{name.upper()}_"
    out: dict[str, object] = {}
    for key in field_names(OAuth2Settings):
        if key == "provider":
            continue
        value = env.get(prefix + key.upper())
        if value:
            out[key] = tuple(value.split()) if key == "scopes" else value
    return out


def registration_help(provider: str, account_name: str, issuer: str = "", then: str = "") -> str:
    """Step-by-step: how to get a client ID for `provider`, and where to put it
    (`then`: where the caller takes it; default: `mailbag account login`)."""
    where = then or (
        f"then: mailbag account login {account_name} --oauth-client-id ID "
        f"(or set it once for all {provider} accounts in config.toml under [oauth2.{provider}] "
        "client_id = \"ID\"); the README's section 'Signing in with OAuth2' has the details"
    )
    if provider == "microsoft":
        return (
            "mailbag has no client ID of its own: register one (free) at "
            "https://entra.microsoft.com > App registrations > New registration: "
            "any name; supported account types 'personal and organizational'; "
            "redirect URI platform 'Public client/native (mobile & desktop)' = http://localhost; "
            "under Authentication allow public client flows; under API permissions add "
            "the delegated permissions IMAP.AccessAsUser.All, POP.AccessAsUser.All, SMTP.Send "
            "and offline_access; copy the 'Application (client) ID'; " + where
        )
    if provider == "google":
        return (
            "mailbag has no client ID of its own: create one (free) at "
            "https://console.cloud.google.com: a project, the Gmail API enabled, the OAuth "
            "consent screen with the scope https://mail.google.com/ (add yourself as a test "
            "user), then Credentials > Create credentials > OAuth client ID of type "
            "'Desktop app'; copy the client ID and the client secret (add "
            "--oauth-client-secret SECRET); " + where
        )
    if issuer:
        # the endpoints came with the provider's settings (autoconfig <oAuth2>)
        return (
            f"the provider signs in at {issuer}; register mailbag there (or ask your mail "
            "provider) for an OAuth2 client ID for desktop mail programs (a public client "
            "allowed to redirect to http://localhost); " + where
        )
    return (
        "ask your mail provider for an OAuth2 client ID for desktop mail programs "
        "(a public client allowed to redirect to http://localhost), and its endpoints "
        "(authorize_url, token_url, optionally device_url) and scopes; " + where
    )


def resolve_provider(
    settings: OAuth2Settings,
    *,
    account_name: str,
    provider_defaults: Mapping[str, OAuth2Settings] | None = None,
    client_secret: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Provider:
    """Built-in definition < [oauth2.PROVIDER] < account settings < environment."""
    env = os.environ if env is None else env
    name = settings.provider
    shared = (provider_defaults or {}).get(name)
    merged = settings.merged(shared)
    merged = merged.merged(builtin_settings(name, merged.tenant))
    overrides = _from_env(name, env)
    if overrides:
        merged = replace(merged, **overrides)
    if not merged.client_id:
        raise ConfigError(
            f"no OAuth2 client ID is set for account {account_name!r} ({name})",
            hint=registration_help(
                name,
                account_name,
                merged.issuer if name == "generic" and merged.authorize_url else "",
            ),
            cause="no-client-id",
        )
    if not merged.authorize_url and not merged.device_url:
        raise ConfigError(
            f"the OAuth2 provider of account {account_name!r} has no endpoints",
            hint=(
                "set authorize_url and token_url (and device_url for sign-in without a "
                f"browser) under [accounts.{account_name}.oauth2] in config.toml, as your "
                "provider documents them"
            ),
        )
    if not merged.token_url:
        raise ConfigError(
            f"the OAuth2 provider of account {account_name!r} has no token_url",
            hint=f"set token_url under [accounts.{account_name}.oauth2] in config.toml",
        )
    if not merged.scopes:
        raise ConfigError(
            f"no OAuth2 scopes are set for account {account_name!r}",
            hint=f"set scopes = [...] under [accounts.{account_name}.oauth2] in config.toml",
        )
    params: dict[str, str] = {}
    if name == "google":
        # without these Google issues no refresh token, and sign-in would not last
        params = {"access_type": "offline", "prompt": "consent"}
    return Provider(
        name=name,
        client_id=merged.client_id,
        client_secret=client_secret or env.get(f"MAILBAG_OAUTH2_{name.upper()}_CLIENT_SECRET"),
        scopes=merged.scopes,
        authorize_url=merged.authorize_url,
        token_url=merged.token_url,
        device_url=merged.device_url,
        revocation_url=merged.revocation_url,
        authorize_params=params,
    )
