"""Reading and writing `config.toml`: strict, located errors; atomic, comment-keeping writes.

The file is meant to be edited by hand, so every error names the file, the
line (where it can be found) and the key, and every rewrite goes through
tomlkit so the user's comments and layout survive. Secrets never go here.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from pathlib import Path

from mailbag.config.model import Account, DiscoverySettings, OAuth2Settings
from mailbag.config.schema import (
    DEFAULTS,
    TOP_KEYS,
    KeyPath,
    Plain,
    SchemaError,
    account_plain,
    oauth2_plain,
    parse_account,
    parse_discovery,
    parse_oauth2_providers,
)
from mailbag.errors import ConfigError
from mailbag.paths import Paths
from mailbag.record import FrozenRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "Config",
    "load_config",
    "remove_account",
    "save_account",
    "save_oauth2_provider",
    "set_default_account",
]


class Config(FrozenRecord):
    """Everything `config.toml` says, validated."""

    __slots__ = ("accounts", "default_account", "discovery", "oauth2", "path")
    path: Path
    accounts: dict[str, Account]
    #: the default account's name (`default = "..."`, else the first account), None if none
    default_account: str | None
    discovery: DiscoverySettings
    #: OAuth2 settings shared by every account of a provider (`[oauth2.PROVIDER]`)
    oauth2: dict[str, OAuth2Settings]

    def __init__(
        self,
        path: Path,
        accounts: dict[str, Account] | None = None,
        default_account: str | None = None,
        discovery: DiscoverySettings | None = None,
        oauth2: dict[str, OAuth2Settings] | None = None,
    ) -> None:
        self._set("path", path)
        self._set("accounts", {} if accounts is None else accounts)
        self._set("default_account", default_account)
        self._set("discovery", DiscoverySettings() if discovery is None else discovery)
        self._set("oauth2", {} if oauth2 is None else oauth2)

    def account(self, name: str | None = None) -> Account:
        """The named account, or the default one; ConfigError with a hint otherwise."""
        if not self.accounts:
            raise ConfigError(
                "no account is configured" if name is None else f"no account named {name!r}",
                hint="add one with: mailbag account add YOU@EXAMPLE.COM",
                file=str(self.path),
            )
        if name is None:
            assert self.default_account is not None
            return self.accounts[self.default_account]
        if name in self.accounts:
            return self.accounts[name]
        # also accept the email address of an account
        for account in self.accounts.values():
            if account.email.lower() == name.lower():
                return account
        raise ConfigError(
            f"no account named {name!r}",
            hint="known accounts: " + ", ".join(sorted(self.accounts)) + " (mailbag account list)",
            file=str(self.path),
        )


# --- locating keys in the text, for error messages ------------------------------------


@functools.cache
def _line_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(a table header line, a key line), compiled when a line is first looked for: the
    configuration loads without them."""
    return (
        re.compile(r"^\s*\[\[?\s*(?P<name>[^\]]+?)\s*\]\]?\s*(#.*)?$"),
        re.compile(r"^\s*(?P<key>[A-Za-z0-9_\-\"'. ]+?)\s*="),
    )


def _split_dotted(text: str) -> KeyPath:
    parts: list[str] = []
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|([A-Za-z0-9_\-]+)', text):
        parts.append(next(g for g in m.groups() if g is not None))
    return tuple(parts)


def locate(text: str, path: KeyPath) -> int | None:
    """1-based line where the key (or table) `path` is defined, if it can be found."""
    header, keyline = _line_patterns()
    table: KeyPath = ()
    best: int | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        m = header.match(line)
        if m:
            table = _split_dotted(m.group("name"))
            if table == path:
                return lineno
            continue
        m = keyline.match(line)
        if m:
            full = table + _split_dotted(m.group("key"))
            if full == path:
                return lineno
            # a key under an inline table, or a dotted key that starts the path
            if best is None and len(full) < len(path) and path[: len(full)] == full:
                best = lineno
    return best


def _located(exc: SchemaError, file: Path, text: str) -> ConfigError:
    line = locate(text, exc.path)
    # a missing key is best reported at its table
    if line is None:
        for cut in range(len(exc.path) - 1, 0, -1):
            line = locate(text, exc.path[:cut])
            if line is not None:
                break
    where = f"{file}:{line}" if line else str(file)
    return ConfigError(
        f"{where}: {exc.message}",
        hint=exc.hint or f"edit {file} and fix the key {'.'.join(exc.path)!r}",
        file=str(file),
        line=line,
        key=".".join(exc.path),
    )


# --- loading -----------------------------------------------------------------------


def _parse_text(text: str, file: Path) -> dict[str, Any]:
    # reading goes through the stdlib parser (several times cheaper to import and run
    # than tomlkit, and every command reads the config); tomlkit only explains errors
    # and does the comment-keeping writes
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        first = str(exc)
    import tomlkit
    from tomlkit.exceptions import ParseError

    try:
        tomlkit.parse(text)
    except ParseError as exc:
        raise ConfigError(
            f"{file}:{exc.line}: not valid TOML: {exc}",
            hint=_SYNTAX_HINT,
            file=str(file),
            line=exc.line,
        ) from None
    m = re.search(r"at line (\d+)", first)
    line = int(m.group(1)) if m else None
    raise ConfigError(
        f"{file}:{line}: not valid TOML: {first}" if line else f"{file}: not valid TOML: {first}",
        hint=_SYNTAX_HINT,
        file=str(file),
        line=line,
    )


_SYNTAX_HINT = "fix the syntax at that line (strings need quotes; tables look like [name])"


def parse_config(text: str, file: Path, *, raw: dict[str, Any] | None = None) -> Config:
    """Validate the text of a config file (no I/O); `raw`: the text already parsed."""
    if raw is None:
        raw = _parse_text(text, file)
    try:
        for key in raw:
            if key not in TOP_KEYS:
                raise SchemaError(
                    (key,),
                    f"unknown key {key!r}",
                    "known top-level keys: default, [accounts.NAME], [discovery], "
                    "[oauth2.PROVIDER]",
                )
        accounts: dict[str, Account] = {}
        accounts_raw = raw.get("accounts", {})
        if not isinstance(accounts_raw, dict):
            raise SchemaError(("accounts",), "'accounts' must be tables like [accounts.NAME]")
        for name, table in accounts_raw.items():
            accounts[name] = parse_account(name, table)
        default = raw.get("default")
        if default is not None:
            if not isinstance(default, str):
                raise SchemaError(("default",), "'default' must be an account name in quotes")
            if default not in accounts:
                raise SchemaError(
                    ("default",),
                    f"default account {default!r} is not configured",
                    "known accounts: " + (", ".join(accounts) or "none"),
                )
        elif accounts:
            default = next(iter(accounts))
        discovery = parse_discovery(raw["discovery"]) if "discovery" in raw else DiscoverySettings()
        oauth2 = parse_oauth2_providers(raw["oauth2"]) if "oauth2" in raw else {}
    except SchemaError as exc:
        raise _located(exc, file, text) from None
    return Config(
        path=file,
        accounts=accounts,
        default_account=default,
        discovery=discovery,
        oauth2=oauth2,
    )


def load_config(paths: Paths) -> Config:
    """Read and validate `paths.config_file`; a missing file is an empty config."""
    file = paths.config_file
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config(path=file)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file} is not UTF-8 text", file=str(file)) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {file}: {exc.strerror}", file=str(file)) from exc
    raw = _cached_parse(paths, text)
    if raw is not None:
        return parse_config(text, file, raw=raw)
    raw = _parse_text(text, file)
    remembered = _as_literals(text, raw)  # before validation could touch raw
    config = parse_config(text, file, raw=raw)
    if remembered is not None:
        _remember_parse(paths, remembered)
    return config


# --- the parsed text, cached ----------------------------------------------------------
#
# Every command reads the config, and loading the TOML parser is a few milliseconds of a
# `mailbag sync` where nothing changed (~100 ms). So the parsed form of the text last
# read is kept in the state directory, next to the text it came from: it is used only
# for exactly the same text, so an edit is always seen. Written with `marshal` (a
# built-in module: nothing to load, no code runs when reading; `ast.literal_eval`, used
# before, loads `ast`, ~4 ms of a no-op sync). marshal is not meant for untrusted data,
# and this file is not: it sits, private, next to config.toml, whose writer can already
# run commands (password_command). A damaged, foreign or unreadable cache file is
# ignored. Validation runs on every load, cached or not.

_CACHE_VERSION = 2  # 1: Python literals (ast)
_CACHE_MAGIC = b"mailbag config cache\n"
_CACHE_FILE = "config.cache"
#: what a damaged file can make marshal raise
_DAMAGED = (EOFError, ValueError, TypeError, MemoryError, RecursionError)


def _cached_parse(paths: Paths, text: str) -> dict[str, Any] | None:
    import marshal

    try:
        cached = (paths.state_dir / _CACHE_FILE).read_bytes()
    except OSError:
        return None
    if not cached.startswith(_CACHE_MAGIC):
        return None
    try:
        entry = marshal.loads(cached[len(_CACHE_MAGIC) :])  # noqa: S302 (see above)
    except _DAMAGED:
        return None
    if not (isinstance(entry, tuple) and len(entry) == 3):
        return None
    version, cached_text, raw = entry
    if version != _CACHE_VERSION or cached_text != text or not isinstance(raw, dict):
        return None
    return raw


def _as_literals(text: str, raw: dict[str, Any]) -> bytes | None:
    """The cache entry for `text`, or None when its values are not all plain values
    marshal keeps exactly (a TOML date or time, inf, nan): such a config is parsed
    every time."""
    import marshal

    entry = (_CACHE_VERSION, text, raw)
    try:
        remembered = marshal.dumps(entry)
        same = marshal.loads(remembered) == entry  # noqa: S302 (our own bytes)
    except _DAMAGED:
        return None
    return _CACHE_MAGIC + remembered if same else None


def _remember_parse(paths: Paths, remembered: bytes) -> None:
    cache = paths.state_dir / _CACHE_FILE
    tmp = cache.with_name(f"{_CACHE_FILE}.{os.getpid()}.tmp")
    try:
        paths.state_dir.mkdir(parents=True, exist_ok=True)
        # private, as the config may be: it is a copy of it
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(remembered)
        os.replace(tmp, cache)  # whole or not at all; losing it only costs a parse
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


# --- writing -----------------------------------------------------------------------


def write_atomically(file: Path, text: str) -> None:
    """Temp file in the same folder, fsync, rename over, fsync the folder."""
    file.parent.mkdir(parents=True, exist_ok=True)
    import tempfile  # only writes need it; every command reads

    fd, tmp = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".tmp", dir=file.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(file.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_doc(file: Path) -> tuple[Any, str]:
    import tomlkit

    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        doc = tomlkit.document()
        doc.add(
            tomlkit.comment("mailbag configuration: edit freely; passwords are never kept here")
        )
        return doc, ""
    # refuse to rewrite a file we would not load (never clobber the user's edits)
    parse_config(text, file)
    return tomlkit.parse(text), text


def _merge(target: Any, values: Plain, defaults: Plain) -> None:
    """Update a tomlkit table in place so untouched keys keep their comments."""
    import tomlkit

    for key, value in values.items():
        default = defaults.get(key)
        if isinstance(value, dict):
            if key in target:
                _merge(target[key], value, default if isinstance(default, dict) else {})
            else:
                sub = {k: v for k, v in value.items() if v is not None}
                sub_defaults = default if isinstance(default, dict) else {}
                sub = {
                    k: v for k, v in sub.items() if k not in sub_defaults or sub_defaults[k] != v
                }
                if sub:
                    table = tomlkit.table()
                    for k, v in sub.items():
                        table[k] = v
                    target[key] = table
        elif value is None:
            if key in target:
                del target[key]
        elif key in target:
            if target[key] != value:
                target[key] = value
        elif not (key in defaults and defaults[key] == value):
            target[key] = value


def save_account(paths: Paths, account: Account, *, make_default: bool = False) -> None:
    """Add or update `account` in the config file, keeping everything else as it is."""
    import tomlkit

    file = paths.config_file
    doc, _ = _read_doc(file)
    if "accounts" not in doc:
        doc["accounts"] = tomlkit.table(is_super_table=True)
    accounts = doc["accounts"]
    values = account_plain(account)
    if account.name in accounts:
        _merge(accounts[account.name], values, DEFAULTS)
    else:
        table = tomlkit.table()
        _merge(table, values, DEFAULTS)
        accounts[account.name] = table
    if make_default:
        _set_default(doc, account.name)
    text = tomlkit.dumps(doc)
    parse_config(text, file)  # never write what we could not read back
    write_atomically(file, text)


def save_oauth2_provider(paths: Paths, settings: OAuth2Settings) -> None:
    """Add or update `[oauth2.PROVIDER]`: OAuth2 settings for every account of a provider."""
    import tomlkit

    file = paths.config_file
    doc, _ = _read_doc(file)
    if "oauth2" not in doc:
        doc["oauth2"] = tomlkit.table(is_super_table=True)
    providers = doc["oauth2"]
    values = oauth2_plain(settings, with_provider=False)
    if settings.provider not in providers:
        providers[settings.provider] = tomlkit.table()
    _merge(providers[settings.provider], values, {})
    text = tomlkit.dumps(doc)
    parse_config(text, file)
    write_atomically(file, text)


def _set_default(doc: Any, name: str) -> None:
    # tomlkit places a new top-level key before the first table
    doc["default"] = name


def set_default_account(paths: Paths, name: str) -> None:
    import tomlkit

    file = paths.config_file
    doc, _ = _read_doc(file)
    if name not in doc.get("accounts", {}):
        raise ConfigError(f"no account named {name!r}", hint="see: mailbag account list")
    _set_default(doc, name)
    text = tomlkit.dumps(doc)
    parse_config(text, file)
    write_atomically(file, text)


def remove_account(paths: Paths, name: str) -> Account:
    """Remove the account's table (and `default` if it named it); returns what was removed."""
    import tomlkit

    file = paths.config_file
    config = load_config(paths)
    account = config.account(name)
    doc, _ = _read_doc(file)
    del doc["accounts"][account.name]
    if doc.get("default") == account.name:
        del doc["default"]
    text = tomlkit.dumps(doc)
    parse_config(text, file)
    write_atomically(file, text)
    return account
