"""Accounts and their configuration: the model, `config.toml`, and secrets.

config = load_config(paths)
account = config.account(None)          # the default account
password = get_secret(account, "incoming")   # from mailbag.config.secrets
"""

from mailbag.config.file import (
    Config,
    load_config,
    parse_config,
    remove_account,
    save_account,
    save_oauth2_provider,
    set_default_account,
)
from mailbag.config.model import (
    Account,
    AuthMethod,
    DiscoverySettings,
    OAuth2Settings,
    PopOptions,
    Protocol,
    SecretRef,
    SecretSource,
    Server,
    SmtpServer,
    SyncOptions,
)
from mailbag.config.secrets import get_secret

__all__ = [
    "Account",
    "AuthMethod",
    "Config",
    "DiscoverySettings",
    "OAuth2Settings",
    "PopOptions",
    "Protocol",
    "SecretRef",
    "SecretSource",
    "Server",
    "SmtpServer",
    "SyncOptions",
    "get_secret",
    "load_config",
    "parse_config",
    "remove_account",
    "save_account",
    "save_oauth2_provider",
    "set_default_account",
]
