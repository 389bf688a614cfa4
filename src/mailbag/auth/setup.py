"""Setting an account up for OAuth2: which provider and client, signing in, keeping it.

The one path `mailbag account add/login` and the interactive client's account
dialog share:

    account, notes = with_published(account, discovery.oauth2)   # autoconfig <oAuth2>
    account, choice, notes = with_client(account, ClientChoice(client_id=...))
    token = obtain_tokens(account, **choice.flow_args(), ...)     # browser or device code
    keep_sign_in(paths, account, token, choice)                   # keyring + config

`with_published` and `with_client` only compute settings; `obtain_tokens` only
talks to the provider; `keep_sign_in` is the only step that stores anything
(the client secret and the refresh token in the keyring, a shared client ID in
`[oauth2.PROVIDER]`). The account itself is saved by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailbag.config.model import Account, OAuth2Settings
from mailbag.record import replace

if TYPE_CHECKING:
    from mailbag.auth.flows import TokenSet
    from mailbag.autoconfig.model import OAuth2Info
    from mailbag.paths import Paths

__all__ = [
    "PROVIDER_TITLES",
    "ClientChoice",
    "keep_sign_in",
    "offers_device_code",
    "offers_oauth2",
    "with_client",
    "with_published",
]

#: how the providers are called in front of users
PROVIDER_TITLES = {"microsoft": "Microsoft", "google": "Google"}


@dataclass(frozen=True)
class ClientChoice:
    """What the user chose for the sign-in (empty: keep or guess)."""

    provider: str = ""  # microsoft | google | generic
    tenant: str = ""
    client_id: str = ""
    client_secret: str = ""
    #: keep the client ID for every account of the provider (`[oauth2.PROVIDER]`)
    shared: bool = False

    def flow_args(self) -> dict[str, Any]:
        """The client arguments of `obtain_tokens`."""
        return {
            "client_id": self.client_id or None,
            "client_secret": self.client_secret or None,
        }


def with_published(
    account: Account, info: OAuth2Info | None, provider: str = ""
) -> tuple[Account, list[str]]:
    """Use the OAuth2 endpoints the provider published with its settings (an autoconfig
    `<oAuth2>` block) unless mailbag knows the provider itself or the user chose one
    (`provider`). Returns the account and what to tell the user."""
    from mailbag.auth.providers import discovered_settings
    from mailbag.auth.tokens import account_settings

    if info is None or account.oauth2 is not None:
        return account, []
    if account_settings(account).provider != "generic":
        return account, []  # Microsoft or Google by address or server: the built-in one
    settings = discovered_settings(info.issuer, info.scopes, info.auth_url, info.token_url)
    if provider and provider != settings.provider:
        return account, []
    notes = []
    if settings.provider == "generic":
        notes.append(
            f"signing in at {info.issuer or info.auth_url}, as "
            f"{account.email.rpartition('@')[2]} publishes in its settings"
        )
    return replace(account, oauth2=settings), notes


def with_client(account: Account, choice: ClientChoice) -> tuple[Account, ClientChoice, list[str]]:
    """The account with the chosen provider, tenant and client in its OAuth2 settings
    (a shared client ID stays out of the account: `keep_sign_in` saves it per provider).
    Returns the account, the choice as it will be applied, and what to tell the user."""
    from mailbag.auth.tokens import account_settings
    from mailbag.config.schema import keyring_key

    notes: list[str] = []
    settings = account_settings(account)
    if choice.provider and choice.provider != settings.provider:
        settings = replace(settings, provider=choice.provider)
    if choice.tenant:
        settings = replace(settings, tenant=choice.tenant)
    if choice.shared and settings.provider == "generic":
        # every provider mailbag does not know is "generic": one shared ID would be
        # sent to all of them, and each one issues its own
        notes.append(
            "--oauth-shared works for microsoft and google; the client ID of this "
            "provider is kept for this account only"
        )
        choice = replace(choice, shared=False)
    if choice.client_id and not choice.shared:
        settings = replace(settings, client_id=choice.client_id)
    if choice.client_secret:
        settings = replace(
            settings, client_secret_keyring=keyring_key(account.name, "oauth2-client")
        )
    return replace(account, oauth2=settings), choice, notes


def keep_sign_in(paths: Paths, account: Account, token: TokenSet, choice: ClientChoice) -> None:
    """Store what a finished sign-in needs later: the client secret (keyring), the
    tokens (`keep_tokens`: refresh token in the keyring) and a shared client ID
    (`[oauth2.PROVIDER]` in config.toml). `account` comes from `with_client`."""
    from mailbag.auth.tokens import keep_tokens
    from mailbag.config.model import SecretRef, SecretSource

    settings = account.oauth2
    if choice.client_secret and settings is not None and settings.client_secret_keyring:
        from mailbag.config.secrets import store_secret

        ref = SecretRef(SecretSource.KEYRING, settings.client_secret_keyring)
        store_secret(ref, choice.client_secret)
    keep_tokens(account, token)
    if choice.client_id and choice.shared and settings is not None:
        from mailbag.config.file import load_config, save_oauth2_provider

        shared = load_config(paths).oauth2.get(settings.provider) or OAuth2Settings(
            provider=settings.provider
        )
        save_oauth2_provider(paths, replace(shared, client_id=choice.client_id))


def offers_oauth2(email: str, host: str, info: OAuth2Info | None) -> str:
    """The provider to sign in with when the servers take OAuth2 ("microsoft", "google",
    "generic" with a published `<oAuth2>` block), or "" when mailbag knows of no sign-in
    for them."""
    from mailbag.auth.providers import discovered_settings, guess_provider

    known = guess_provider(email, host)
    if known != "generic":
        return known
    if info is not None:
        return discovered_settings(info.issuer, info.scopes, info.auth_url, info.token_url).provider
    return ""


def offers_device_code(account: Account, paths: Paths | None = None) -> bool:
    """Whether the account's provider has a device-code sign-in that works for mail
    (Google has one, but it does not grant Gmail's scope)."""
    from mailbag.auth.tokens import account_settings, provider_for
    from mailbag.errors import MailbagError

    settings = account_settings(account)
    if settings.provider == "google":
        return False
    # the endpoints do not depend on the client: a placeholder lets them resolve
    probe = replace(account, oauth2=replace(settings, client_id=settings.client_id or "-"))
    try:
        return bool(provider_for(probe, paths=paths).device_url)
    except MailbagError:
        return False
