"""The `config.toml` schema: plain TOML values <-> the frozen account model.

Validation is strict: an unknown key or a value of the wrong kind is a
`ConfigError` that names the key path (the caller adds file and line). This
module never reads or writes files and never touches secrets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

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
from mailbag.errors import ConfigError
from mailbag.protocols.transport import Security

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    E = TypeVar("E")
    T = TypeVar("T")

KeyPath = tuple[str, ...]

TOP_KEYS = ("default", "accounts", "discovery", "oauth2")
ACCOUNT_KEYS = (
    "email",
    "display_name",
    "identities",
    "protocol",
    "ca_file",
    "server_saves_sent",
    "incoming",
    "smtp",
    "sync",
    "pop",
    "oauth2",
)
SERVER_KEYS = ("host", "port", "security", "username", "auth", "keyring", "password_command")
SMTP_KEYS = (*SERVER_KEYS, "requires_auth")
SYNC_KEYS = ("include", "exclude", "mass_delete_threshold")
POP_KEYS = (
    "leave_on_server",
    "delete_after_days",
    "delete_when_deleted_here",
    "max_size",
    "oversize",
    "max_per_session",
)
OAUTH2_KEYS = (
    "provider",
    "client_id",
    "client_secret_keyring",
    "tenant",
    "scopes",
    "issuer",
    "authorize_url",
    "token_url",
    "device_url",
    "revocation_url",
)
DISCOVERY_KEYS = (
    "ispdb_url",
    "dns_server",
    "dns_port",
    "https_port",
    "http_port",
    "ca_file",
    "timeout",
)


class SchemaError(ConfigError):
    """A bad key or value at `path` (the loader turns it into a located ConfigError)."""

    def __init__(self, path: KeyPath, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, key=".".join(path))
        self.path = path


def keyring_key(account_name: str, which: str) -> str:
    """The keyring user name under service "mailbag" for an account's secret."""
    return f"{account_name}:{which}"


# --- reading -------------------------------------------------------------------------


def _check_keys(table: Mapping[str, Any], allowed: tuple[str, ...], path: KeyPath) -> None:
    for key in table:
        if key not in allowed:
            import difflib  # only for the error message

            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            hint += "known keys here: " + ", ".join(allowed)
            raise SchemaError((*path, key), f"unknown key {'.'.join((*path, key))!r}", hint)


def _table(value: Any, path: KeyPath) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SchemaError(path, f"{'.'.join(path)!r} must be a table like [{'.'.join(path)}]")
    return value


def _str(table: Mapping[str, Any], key: str, path: KeyPath, default: str | None = None) -> str:
    if key not in table:
        if default is None:
            raise SchemaError((*path, key), f"missing key {'.'.join((*path, key))!r}")
        return default
    value = table[key]
    if not isinstance(value, str):
        raise SchemaError((*path, key), f"{'.'.join((*path, key))!r} must be a string")
    return value


def _opt_str(table: Mapping[str, Any], key: str, path: KeyPath) -> str | None:
    return _str(table, key, path) if key in table else None


def _int(table: Mapping[str, Any], key: str, path: KeyPath, default: int | None) -> int | None:
    if key not in table:
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchemaError((*path, key), f"{'.'.join((*path, key))!r} must be a whole number")
    return value


def _bool(table: Mapping[str, Any], key: str, path: KeyPath, default: bool) -> bool:
    if key not in table:
        return default
    value = table[key]
    if not isinstance(value, bool):
        raise SchemaError(
            (*path, key), f"{'.'.join((*path, key))!r} must be true or false (no quotes)"
        )
    return value


def _str_list(
    table: Mapping[str, Any], key: str, path: KeyPath, default: tuple[str, ...]
) -> tuple[str, ...]:
    if key not in table:
        return default
    value = table[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SchemaError(
            (*path, key), f'{".".join((*path, key))!r} must be a list of strings, like ["a"]'
        )
    return tuple(value)


def _enum(
    table: Mapping[str, Any], key: str, path: KeyPath, kind: Callable[[str], E], choices: list[str]
) -> E:
    raw = _str(table, key, path)
    try:
        return kind(raw)
    except ValueError:
        raise SchemaError(
            (*path, key),
            f"{'.'.join((*path, key))!r} = {raw!r} is not valid",
            hint="use one of: " + ", ".join(choices),
        ) from None


def _guard(path: KeyPath, build: Callable[[], T]) -> T:
    """Model constructors validate too; give their errors a key path."""
    try:
        return build()
    except SchemaError:
        raise
    except ConfigError as exc:
        raise SchemaError(path, exc.message, exc.hint) from None


def _secret(table: Mapping[str, Any], path: KeyPath, default: SecretRef) -> SecretRef:
    command = _opt_str(table, "password_command", path)
    key = _opt_str(table, "keyring", path)
    if command is not None and key is not None:
        raise SchemaError(
            (*path, "password_command"),
            f"{'.'.join(path)!r} has both 'keyring' and 'password_command'",
            hint="keep only one: where the password comes from",
        )
    if command is not None:
        if not command.strip():
            raise SchemaError((*path, "password_command"), "password_command is empty")
        return SecretRef(SecretSource.COMMAND, command)
    if key is not None:
        if not key:
            raise SchemaError((*path, "keyring"), "keyring entry name is empty")
        return SecretRef(SecretSource.KEYRING, key)
    return default


def _server_fields(table: Mapping[str, Any], path: KeyPath) -> dict[str, Any]:
    port = _int(table, "port", path, None)
    if port is not None and not 0 < port < 65536:
        raise SchemaError((*path, "port"), f"invalid port {port}: must be 1-65535")
    return {
        "host": _str(table, "host", path),
        "port": port,
        "security": _enum(table, "security", path, Security, [s.value for s in Security]),
        "auth": _enum(table, "auth", path, AuthMethod, [a.value for a in AuthMethod])
        if "auth" in table
        else AuthMethod.PASSWORD,
    }


def parse_account(name: str, raw: Any) -> Account:
    path: KeyPath = ("accounts", name)
    table = _table(raw, path)
    _check_keys(table, ACCOUNT_KEYS, path)
    email = _str(table, "email", path)
    protocol = _enum(table, "protocol", path, Protocol, [p.value for p in Protocol])

    ipath = (*path, "incoming")
    if "incoming" not in table:
        raise SchemaError(ipath, f"account {name!r} has no [{'.'.join(ipath)}] table")
    itable = _table(table["incoming"], ipath)
    _check_keys(itable, SERVER_KEYS, ipath)
    ifields = _server_fields(itable, ipath)
    if ifields["port"] is None:
        raise SchemaError((*ipath, "port"), f"missing key {'.'.join((*ipath, 'port'))!r}")
    iuser = _str(itable, "username", ipath, email)
    isecret = _secret(itable, ipath, SecretRef(SecretSource.KEYRING, keyring_key(name, "incoming")))
    incoming = _guard(ipath, lambda: Server(username=iuser, secret=isecret, **ifields))

    spath = (*path, "smtp")
    if "smtp" not in table:
        raise SchemaError(spath, f"account {name!r} has no [{'.'.join(spath)}] table")
    stable = _table(table["smtp"], spath)
    _check_keys(stable, SMTP_KEYS, spath)
    sfields = _server_fields(stable, spath)
    if sfields["port"] is None:
        raise SchemaError((*spath, "port"), f"missing key {'.'.join((*spath, 'port'))!r}")
    requires_auth = _bool(stable, "requires_auth", spath, True)
    # "same credentials as incoming" unless the smtp table says otherwise
    suser = _str(stable, "username", spath, iuser)
    sdefault = isecret if requires_auth else SecretRef(SecretSource.NONE, "")
    ssecret = _secret(stable, spath, sdefault)
    smtp = _guard(
        spath,
        lambda: SmtpServer(username=suser, secret=ssecret, requires_auth=requires_auth, **sfields),
    )

    sync = SyncOptions()
    if "sync" in table:
        ypath = (*path, "sync")
        ytable = _table(table["sync"], ypath)
        _check_keys(ytable, SYNC_KEYS, ypath)
        threshold = _int(ytable, "mass_delete_threshold", ypath, sync.mass_delete_threshold)
        assert threshold is not None
        include = _str_list(ytable, "include", ypath, sync.include)
        exclude = _str_list(ytable, "exclude", ypath, sync.exclude)
        sync = _guard(ypath, lambda: SyncOptions(include, exclude, threshold))

    pop = PopOptions()
    if "pop" in table:
        ppath = (*path, "pop")
        ptable = _table(table["pop"], ppath)
        _check_keys(ptable, POP_KEYS, ppath)
        leave = _bool(ptable, "leave_on_server", ppath, pop.leave_on_server)
        days = _int(ptable, "delete_after_days", ppath, None)
        when_deleted = _bool(ptable, "delete_when_deleted_here", ppath, False)
        max_size = _int(ptable, "max_size", ppath, None)
        oversize = _str(ptable, "oversize", ppath, pop.oversize)
        per_session = _int(ptable, "max_per_session", ppath, None)
        pop = _guard(
            ppath,
            lambda: PopOptions(leave, days, when_deleted, max_size, oversize, per_session),
        )

    oauth2 = parse_oauth2(table["oauth2"], (*path, "oauth2")) if "oauth2" in table else None

    ca_raw = _opt_str(table, "ca_file", path)
    identities = _str_list(table, "identities", path, ())
    display_name = _str(table, "display_name", path, "")
    saves_sent = _bool(table, "server_saves_sent", path, False)
    return _guard(
        path,
        lambda: Account(
            name=name,
            email=email,
            protocol=protocol,
            incoming=incoming,
            smtp=smtp,
            display_name=display_name,
            identities=identities,
            ca_file=Path(ca_raw).expanduser() if ca_raw else None,
            server_saves_sent=saves_sent,
            sync=sync,
            pop=pop,
            oauth2=oauth2,
        ),
    )


def parse_oauth2(raw: Any, path: KeyPath, provider: str | None = None) -> OAuth2Settings:
    """`[accounts.NAME.oauth2]`, or `[oauth2.PROVIDER]` when `provider` is given."""
    table = _table(raw, path)
    _check_keys(table, OAUTH2_KEYS, path)
    values = {
        key: _str(table, key, path, "") for key in OAUTH2_KEYS if key not in ("provider", "scopes")
    }
    name = provider if provider is not None else _str(table, "provider", path, "generic")
    scopes = _str_list(table, "scopes", path, ())
    return _guard(path, lambda: OAuth2Settings(provider=name, scopes=scopes, **values))


def parse_oauth2_providers(raw: Any) -> dict[str, OAuth2Settings]:
    """The top-level `[oauth2.PROVIDER]` tables: settings shared by every account."""
    path: KeyPath = ("oauth2",)
    table = _table(raw, path)
    out: dict[str, OAuth2Settings] = {}
    for name, sub in table.items():
        out[name] = parse_oauth2(sub, (*path, name), provider=name)
    return out


def oauth2_plain(settings: OAuth2Settings, *, with_provider: bool = True) -> Plain:
    """OAuth2 settings as TOML values; empty ones are left out."""
    out: Plain = {
        "provider": settings.provider if with_provider else None,
        "scopes": list(settings.scopes) or None,
    }
    for key in OAUTH2_KEYS:
        if key not in out:
            out[key] = getattr(settings, key) or None
    return out


def parse_discovery(raw: Any) -> DiscoverySettings:
    path: KeyPath = ("discovery",)
    table = _table(raw, path)
    _check_keys(table, DISCOVERY_KEYS, path)
    base = DiscoverySettings()
    dns_port = _int(table, "dns_port", path, base.dns_port)
    https_port = _int(table, "https_port", path, base.https_port)
    http_port = _int(table, "http_port", path, base.http_port)
    assert dns_port is not None and https_port is not None and http_port is not None
    for key, port in (("dns_port", dns_port), ("https_port", https_port), ("http_port", http_port)):
        if not 0 < port < 65536:
            raise SchemaError((*path, key), f"invalid port {port}: must be 1-65535")
    timeout: float = base.timeout
    if "timeout" in table:
        value = table["timeout"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise SchemaError((*path, "timeout"), "'discovery.timeout' must be seconds > 0")
        timeout = float(value)
    url = _str(table, "ispdb_url", path, base.ispdb_url)
    if not url.startswith("https://"):
        raise SchemaError(
            (*path, "ispdb_url"),
            f"'discovery.ispdb_url' must be an https:// URL, not {url!r}",
            hint="discovery only fetches over HTTPS",
        )
    ca_raw = _opt_str(table, "ca_file", path)
    return DiscoverySettings(
        ispdb_url=url,
        dns_server=_opt_str(table, "dns_server", path),
        dns_port=dns_port,
        https_port=https_port,
        http_port=http_port,
        ca_file=Path(ca_raw).expanduser() if ca_raw else None,
        timeout=timeout,
    )


# --- writing -------------------------------------------------------------------------

#: a value of None means "leave the key out"
Plain = dict[str, "Any"]  # (quoted: typing is not loaded at run time)


def _server_plain(
    server: Server, name: str, which: str, inherit: Server | None, email: str
) -> Plain:
    out: Plain = {
        "host": server.host,
        "port": server.port,
        "security": server.security.value,
        "username": server.username,
        "auth": server.auth.value,
        "keyring": None,
        "password_command": None,
    }
    default_user = inherit.username if inherit is not None else email
    if server.username == default_user:
        out["username"] = None
    if server.auth is AuthMethod.PASSWORD:
        out["auth"] = None
    ref = server.secret
    default_ref = (
        inherit.secret
        if inherit is not None
        else SecretRef(SecretSource.KEYRING, keyring_key(name, which))
    )
    if ref != default_ref:
        if ref.source is SecretSource.COMMAND:
            out["password_command"] = ref.key
        elif ref.source is SecretSource.KEYRING:
            out["keyring"] = ref.key
    return out


def options_plain(account: Account) -> Plain:
    """The account's sync and POP options as plain values, for TOML and JSON alike."""
    return {
        "sync": {
            "include": list(account.sync.include),
            "exclude": list(account.sync.exclude),
            "mass_delete_threshold": account.sync.mass_delete_threshold,
        },
        "pop": {
            "leave_on_server": account.pop.leave_on_server,
            "delete_after_days": account.pop.delete_after_days,
            "delete_when_deleted_here": account.pop.delete_when_deleted_here,
            "max_size": account.pop.max_size,
            "oversize": account.pop.oversize,
            "max_per_session": account.pop.max_per_session,
        },
    }


def account_plain(account: Account) -> Plain:
    """The account as nested plain values for TOML; None = key absent."""
    incoming = _server_plain(account.incoming, account.name, "incoming", None, account.email)
    smtp_inherit: Server | None = account.incoming if account.smtp.requires_auth else None
    smtp = _server_plain(account.smtp, account.name, "smtp", smtp_inherit, account.email)
    if not account.smtp.requires_auth:
        smtp["username"] = None
        smtp["keyring"] = None
        smtp["password_command"] = None
    smtp["requires_auth"] = account.smtp.requires_auth
    return {
        "email": account.email,
        "display_name": account.display_name or None,
        "identities": list(account.identities) or None,
        "protocol": account.protocol.value,
        "ca_file": str(account.ca_file) if account.ca_file else None,
        "server_saves_sent": account.server_saves_sent,
        "incoming": incoming,
        "smtp": smtp,
        **options_plain(account),
        "oauth2": oauth2_plain(account.oauth2) if account.oauth2 is not None else None,
    }


#: values that need not be written when a key is new (the model's defaults)
DEFAULTS: Plain = {
    "server_saves_sent": False,
    "smtp": {"requires_auth": True},
    "sync": {"include": ["*"], "exclude": [], "mass_delete_threshold": 50},
    "pop": {"leave_on_server": True, "delete_when_deleted_here": False, "oversize": "skip"},
}
