"""Tokens of an account: sign in, keep the refresh token, hand out access tokens.

- The refresh token is the account's incoming secret: by default the keyring
  entry `NAME:incoming`, written and read through `mailbag.config.secrets`
  (a `password_command` works too, read-only: rotated tokens cannot be kept).
- Access tokens are cached in memory and in the keyring (`NAME:oauth2-access`,
  with their expiry) so that consecutive commands do not refresh every time;
  they are refreshed `REFRESH_MARGIN` seconds before they expire, and once more
  when a server refuses one (`invalidate`).
- Refreshes of one account are serialized with a lock file, because providers
  that rotate refresh tokens (Microsoft) make a second, concurrent refresh with
  the old token fail.
- A revoked or expired refresh token becomes one AuthError saying
  "sign in again: mailbag account login NAME"; nothing here retries in a loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
import webbrowser
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from mailbag.auth.flows import DeviceCode, TokenSet, refresh, revoke
from mailbag.auth.providers import Provider, guess_provider, resolve_provider
from mailbag.config.model import Account, OAuth2Settings, SecretRef, SecretSource
from mailbag.config.schema import keyring_key
from mailbag.errors import AuthError, MailbagError, SecretError
from mailbag.paths import Paths
from mailbag.record import replace

__all__ = [
    "REFRESH_MARGIN",
    "PendingSignIn",
    "SignOut",
    "account_settings",
    "get_access_token",
    "invalidate",
    "is_signed_in",
    "keep_tokens",
    "obtain_tokens",
    "provider_for",
    "sign_in",
    "sign_out",
    "using_pending",
]

#: refresh access tokens that expire within this many seconds
REFRESH_MARGIN = 120.0


_memory: dict[str, TokenSet] = {}
#: access tokens a server refused, per account: never handed out again
_refused: dict[str, set[str]] = {}
#: a refresh token that comes from a password command cannot be replaced by us; when
#: the provider rotates it (Microsoft does), this process keeps the new one, keyed by
#: (account, what the command still prints), and uses it while the command does
_rotated: dict[tuple[str, str], str] = {}
_memory_lock = threading.Lock()


def account_settings(account: Account) -> OAuth2Settings:
    """The account's OAuth2 settings, or the provider guessed from its address/host."""
    if account.oauth2 is not None:
        return account.oauth2
    return OAuth2Settings(provider=guess_provider(account.email, account.incoming.host))


def _refresh_ref(account: Account) -> SecretRef:
    ref = account.incoming.secret
    if ref.source is SecretSource.KEYRING and not ref.key:
        # an account built in code rather than loaded: the loader's default entry
        return SecretRef(SecretSource.KEYRING, keyring_key(account.name, "incoming"))
    return ref


def _access_ref(account: Account) -> SecretRef:
    return SecretRef(SecretSource.KEYRING, keyring_key(account.name, "oauth2-access"))


def provider_for(
    account: Account,
    *,
    paths: Paths | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Provider:
    """Resolve the account's provider (account, `[oauth2.PROVIDER]`, environment)."""
    settings = account_settings(account)
    if client_id:
        settings = replace(settings, client_id=client_id)
    defaults: dict[str, OAuth2Settings] = {}
    if paths is not None or not settings.client_id:
        from mailbag.config.file import load_config

        defaults = load_config(paths or Paths.from_env()).oauth2
    merged = settings.merged(defaults.get(settings.provider))
    if client_secret is None and merged.client_secret_keyring:
        client_secret = _read_keyring(
            SecretRef(SecretSource.KEYRING, merged.client_secret_keyring), account, "client secret"
        )
    return resolve_provider(
        settings,
        account_name=account.name,
        provider_defaults=defaults,
        client_secret=client_secret,
        env=env,
    )


def _read_keyring(ref: SecretRef, account: Account, what: str) -> str:
    from mailbag.config.secrets import SERVICE, require_keyring

    require_keyring()
    import keyring
    from keyring.errors import KeyringError

    try:
        value = keyring.get_password(SERVICE, ref.key)
    except KeyringError as exc:
        raise SecretError(f"cannot read the OAuth2 {what} of {account.name!r}: {exc}") from exc
    if value is None:
        raise SecretError(
            f"the OAuth2 {what} of {account.name!r} is not in the keyring",
            hint=f"sign in again with: mailbag account login {account.name} "
            "--oauth-client-id ID --oauth-client-secret SECRET",
        )
    return value


def _reauth(account: Account, why: str) -> AuthError:
    return AuthError(
        f"account {account.name!r} is not signed in: {why}",
        hint=f"sign in again: mailbag account login {account.name}",
        cause="reauth",
        account=account.name,
    )


def _read_refresh_token(account: Account) -> str:
    from mailbag.config.secrets import get_secret

    if account.incoming.secret != _refresh_ref(account):
        account = replace(account, incoming=replace(account.incoming, secret=_refresh_ref(account)))
    try:
        return get_secret(account, "incoming")
    except SecretError as exc:
        if exc.fields.get("cause") == "missing":
            raise _reauth(account, "no OAuth2 sign-in is stored for it") from None
        raise


def _store_refresh_token(account: Account, token: str) -> bool:
    from mailbag.config.secrets import store_secret

    ref = _refresh_ref(account)
    if ref.source is not SecretSource.KEYRING:
        return False  # a password command is read-only for us
    store_secret(ref, token)
    return True


def _load_cached(account: Account) -> TokenSet | None:
    with _memory_lock:
        cached = _memory.get(account.name)
    if cached is not None:
        return cached
    if _refresh_ref(account).source is not SecretSource.KEYRING:
        # `_save_cached` keeps such an account's tokens in memory only, so there is
        # nothing to read; and its commands then never load keyring (~100-200 ms)
        return None
    from mailbag.config.secrets import keyring_problem

    if keyring_problem() is not None:
        return None
    import keyring
    from keyring.errors import KeyringError

    try:
        raw = keyring.get_password("mailbag", _access_ref(account).key)
    except KeyringError:
        return None  # only a cache: a locked keyring means we refresh instead
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return TokenSet(str(data["access_token"]), float(data["expires_at"]))
    except (ValueError, KeyError, TypeError):
        return None


def _save_cached(account: Account, token: TokenSet) -> None:
    with _memory_lock:
        _memory[account.name] = token
    from mailbag.config.secrets import keyring_problem

    if _refresh_ref(account).source is not SecretSource.KEYRING or keyring_problem() is not None:
        return
    import keyring
    from keyring.errors import KeyringError

    value = json.dumps({"access_token": token.access_token, "expires_at": token.expires_at})
    # only a cache: failing to keep it costs one refresh next time, nothing more
    with contextlib.suppress(KeyringError):
        keyring.set_password("mailbag", _access_ref(account).key, value)


def _forget_cached(account: Account) -> None:
    with _memory_lock:
        _memory.pop(account.name, None)
    from mailbag.config.secrets import delete_secret

    with contextlib.suppress(SecretError):
        delete_secret(_access_ref(account))


@contextlib.contextmanager
def _account_lock(account: Account, paths: Paths | None) -> Iterator[None]:
    state = (paths or Paths.from_env()).state_dir
    state.mkdir(parents=True, exist_ok=True)
    lock_file = Path(state) / f"oauth2-{account.name.replace('/', '_')}.lock"
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _usable(account: Account, token: TokenSet | None, force: bool) -> bool:
    if token is None or token.expires_within(REFRESH_MARGIN):
        return False
    return not force and token.access_token not in _refused.get(account.name, set())


def get_access_token(
    account: Account,
    *,
    force_refresh: bool = False,
    paths: Paths | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """A current access token for `account`, refreshing it when needed.

    `force_refresh` skips every cache (use `invalidate` after a server refused
    a token instead: it also keeps other processes from reusing it).
    """
    pending = getattr(_pending, "by_name", None) or {}
    if account.name in pending:
        return _pending_token(account, pending[account.name], force_refresh, paths, env)
    cached = _load_cached(account)
    if _usable(account, cached, force_refresh):
        assert cached is not None
        return cached.access_token
    with _account_lock(account, paths):
        if _refresh_ref(account).source is SecretSource.KEYRING:
            # another process may have refreshed while we waited for the lock: the
            # keyring has its token. (Otherwise the memory is the only cache, and it
            # holds what another thread of this process just got: keep it.)
            with _memory_lock:
                _memory.pop(account.name, None)
        cached = _load_cached(account)
        if _usable(account, cached, force_refresh):
            assert cached is not None
            return cached.access_token
        provider = provider_for(account, paths=paths, env=env)
        stored = _read_refresh_token(account)
        with _memory_lock:
            refresh_token = _rotated.get((account.name, stored), stored)
        try:
            token = refresh(provider, refresh_token, account_name=account.name)
        except AuthError as exc:
            if exc.fields.get("cause") != "reauth":
                raise
            # a process that got here first may have rotated the refresh token
            latest = _read_refresh_token(account)
            if latest == refresh_token:
                raise
            token = refresh(provider, latest, account_name=account.name)
            stored = refresh_token = latest
        if (
            token.refresh_token
            and token.refresh_token != refresh_token
            and not _store_refresh_token(account, token.refresh_token)
        ):
            with _memory_lock:
                _rotated[(account.name, stored)] = token.refresh_token
        _save_cached(account, token)
        return token.access_token


def invalidate(account: Account, access_token: str) -> None:
    """A server refused `access_token`: drop it from every cache."""
    with _memory_lock:
        _refused.setdefault(account.name, set()).add(access_token)
        cached = _memory.get(account.name)
        if cached is not None and cached.access_token == access_token:
            del _memory[account.name]
    stored = _load_cached(account)
    if stored is not None and stored.access_token == access_token:
        _forget_cached(account)


def obtain_tokens(
    account: Account,
    *,
    device: bool = False,
    paths: Paths | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    show_url: Callable[[str, bool], None] | None = None,
    show_code: Callable[[DeviceCode], None] | None = None,
    open_browser: Callable[[str], bool] = webbrowser.open,
    sleep: Callable[[float], None] = time.sleep,
    env: Mapping[str, str] | None = None,
    cancel: threading.Event | None = None,
    timeout: float | None = None,
) -> TokenSet:
    """Run a sign-in flow (browser or `device` code) and return its tokens, keeping
    nothing: `keep_tokens` stores them (the account dialog keeps them in memory until
    Save; `sign_in` does both at once)."""
    from mailbag.auth import flows

    provider = provider_for(
        account, paths=paths, client_id=client_id, client_secret=client_secret, env=env
    )
    if device:
        token = flows.sign_in_device(
            provider,
            account_name=account.name,
            show_code=show_code or (lambda code: None),
            sleep=sleep,
            cancel=cancel,
        )
    else:
        token = flows.sign_in_browser(
            provider,
            account_name=account.name,
            login_hint=account.incoming.username or account.email,
            show_url=show_url,
            open_browser=open_browser,
            timeout=flows.SIGN_IN_TIMEOUT if timeout is None else timeout,
            cancel=cancel,
        )
    if not token.refresh_token:
        raise AuthError(
            f"{provider.name} signed in but gave no refresh token, so the sign-in would not last",
            hint="make sure the scopes include offline access (Microsoft: offline_access)",
        )
    if _refresh_ref(account).source is not SecretSource.KEYRING:
        raise SecretError(
            f"account {account.name!r} reads its secret from a command, so the OAuth2 "
            "refresh token cannot be stored",
            hint="remove password_command from its [incoming] table to keep the sign-in in "
            "the keyring",
        )
    return token


def keep_tokens(account: Account, token: TokenSet) -> None:
    """Keep a sign-in's tokens: the refresh token in the keyring (the account's incoming
    secret), the access token in the caches; tokens a server refused before are forgotten."""
    if not token.refresh_token or not _store_refresh_token(account, token.refresh_token):
        raise SecretError(f"the OAuth2 sign-in of {account.name!r} cannot be kept")
    with _memory_lock:
        _refused.pop(account.name, None)
    _save_cached(account, token)


def is_signed_in(account: Account) -> bool:
    """Whether a sign-in (refresh token) is stored for the account; no network."""
    try:
        _read_refresh_token(account)
    except (AuthError, SecretError):
        return False
    return True


def sign_in(
    account: Account,
    *,
    device: bool = False,
    paths: Paths | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    show_url: Callable[[str, bool], None] | None = None,
    show_code: Callable[[DeviceCode], None] | None = None,
    open_browser: Callable[[str], bool] = webbrowser.open,
    sleep: Callable[[float], None] = time.sleep,
    env: Mapping[str, str] | None = None,
) -> TokenSet:
    """Run a sign-in flow and keep its tokens (refresh token into the keyring)."""
    token = obtain_tokens(
        account,
        device=device,
        paths=paths,
        client_id=client_id,
        client_secret=client_secret,
        show_url=show_url,
        show_code=show_code,
        open_browser=open_browser,
        sleep=sleep,
        env=env,
    )
    keep_tokens(account, token)
    return token


# --- a sign-in not kept yet (the account dialog tests it before Save) -----------------


@dataclass
class PendingSignIn:
    """Tokens from `obtain_tokens` that are not stored anywhere yet, and the client
    secret they were obtained with (a refresh during the test needs it)."""

    token: TokenSet
    client_id: str | None = None
    client_secret: str | None = None


_pending = threading.local()


@contextlib.contextmanager
def using_pending(account: Account, pending: PendingSignIn) -> Iterator[None]:
    """In this thread, log `account` in with `pending`'s tokens instead of the stored
    sign-in (refreshed in memory when a server refuses them; nothing is written)."""
    previous = getattr(_pending, "by_name", None)
    _pending.by_name = {**(previous or {}), account.name: pending}
    try:
        yield
    finally:
        _pending.by_name = previous


def _pending_token(
    account: Account,
    pending: PendingSignIn,
    force_refresh: bool,
    paths: Paths | None,
    env: Mapping[str, str] | None,
) -> str:
    token = pending.token
    if not force_refresh and not token.expires_within(REFRESH_MARGIN):
        return token.access_token
    if not token.refresh_token:
        raise _reauth(account, "the new sign-in gave no refresh token")
    provider = provider_for(
        account,
        paths=paths,
        client_id=pending.client_id,
        client_secret=pending.client_secret,
        env=env,
    )
    pending.token = refresh(provider, token.refresh_token, account_name=account.name)
    return pending.token.access_token


#: how long `account remove` waits for the provider to revoke a sign-in
REVOKE_TIMEOUT = 10.0


@dataclass(frozen=True)
class SignOut:
    """What `sign_out` did: whether the provider revoked the sign-in, why not,
    and the keyring entries it removed (their names, never their values)."""

    #: the provider confirmed the refresh token is revoked
    revoked: bool
    #: why a stored sign-in may still be valid at the provider ("" when revoked, or
    #: when nothing was stored)
    problem: str = ""
    hint: str = ""
    removed: tuple[str, ...] = ()


def _owned_keys(account: Account, paths: Paths | None) -> list[SecretRef]:
    """The keyring entries that belong to this account alone."""
    refs = [_refresh_ref(account), _access_ref(account)]
    if account.smtp.secret.source is SecretSource.KEYRING and account.smtp.secret.key:
        refs.append(account.smtp.secret)
    client_key = keyring_key(account.name, "oauth2-client")
    settings = account.oauth2
    # the client secret `account login --oauth-client-secret` kept for this account;
    # a client secret other accounts or `[oauth2.PROVIDER]` also name stays
    shared: set[str] = set()
    with contextlib.suppress(MailbagError):
        from mailbag.config.file import load_config

        config = load_config(paths or Paths.from_env())
        shared = {
            a.oauth2.client_secret_keyring
            for a in config.accounts.values()
            if a.name != account.name and a.oauth2 is not None
        } | {s.client_secret_keyring for s in config.oauth2.values()}
    for key in {client_key, settings.client_secret_keyring if settings else ""}:
        if key and key not in shared and key.startswith(f"{account.name}:"):
            refs.append(SecretRef(SecretSource.KEYRING, key))
    return list(dict.fromkeys(r for r in refs if r.source is SecretSource.KEYRING))


def _revoke_at_provider(
    account: Account, paths: Paths | None, env: Mapping[str, str] | None, timeout: float
) -> SignOut:
    if _refresh_ref(account).source is not SecretSource.KEYRING:
        return SignOut(
            False,
            "the refresh token comes from a password command, so mailbag leaves it alone",
            "revoke it with the tool that keeps it, if it should end",
        )
    try:
        token = _read_refresh_token(account)
    except AuthError:
        return SignOut(False)  # nothing stored: nothing to revoke
    except SecretError as exc:
        return SignOut(
            False,
            f"cannot read it from the keyring ({exc.message})",
            "remove mailbag's access in your account's security settings at the provider",
        )
    try:
        provider = provider_for(account, paths=paths, env=env)
    except MailbagError as exc:
        return SignOut(False, f"cannot reach the provider to revoke it ({exc.message})")
    if not provider.revocation_url:
        hint = (
            "Microsoft offers apps no way to revoke a sign-in: remove its access at "
            "https://account.live.com/consent/Manage (personal accounts) or "
            "https://myapps.microsoft.com (work or school)"
            if provider.name == "microsoft"
            else "remove mailbag's access in your account's security settings at the provider"
        )
        who = {"microsoft": "Microsoft", "google": "Google"}.get(provider.name, "the provider")
        return SignOut(False, f"{who} has no revocation endpoint", hint)
    try:
        revoke(provider, token, account_name=account.name, timeout=timeout)
    except MailbagError as exc:
        return SignOut(
            False,
            f"the provider did not revoke it: {exc.message}",
            "it stays valid until it expires; remove mailbag's access in your account's "
            "security settings at the provider to end it now",
        )
    return SignOut(True)


def sign_out(
    account: Account,
    *,
    paths: Paths | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = REVOKE_TIMEOUT,
) -> SignOut:
    """Revoke the refresh token where the provider allows it (best effort: a failure is
    reported, never raised), then forget every token and client secret of the account."""
    from mailbag.config.secrets import delete_secret

    outcome = _revoke_at_provider(account, paths, env, timeout)
    removed = []
    for ref in _owned_keys(account, paths):
        # best effort too: a keyring that refuses must not keep the account
        with contextlib.suppress(SecretError):
            if delete_secret(ref):
                removed.append(ref.key)
    with _memory_lock:
        _memory.pop(account.name, None)
        _refused.pop(account.name, None)
        for key in [k for k in _rotated if k[0] == account.name]:
            del _rotated[key]
    state = (paths or Paths.from_env()).state_dir
    with contextlib.suppress(OSError):
        (Path(state) / f"oauth2-{account.name.replace('/', '_')}.lock").unlink(missing_ok=True)
    return replace(outcome, removed=tuple(removed))
