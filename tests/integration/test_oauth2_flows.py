"""OAuth2 flows and token handling against the real local authorization server."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from mailbag import auth
from mailbag.auth import flows, tokens
from mailbag.auth.providers import resolve_provider
from mailbag.config.model import (
    Account,
    AuthMethod,
    OAuth2Settings,
    Protocol,
    Server,
    SmtpServer,
)
from mailbag.errors import AuthError, ConfigError
from mailbag.paths import Paths
from mailbag.protocols.transport import Security
from mailbag.sandbox.oauth2 import TEST_CLIENT_ID, OAuth2Server

USER = "alice@sandbox.test"


@pytest.fixture
def server() -> Iterator[OAuth2Server]:
    with OAuth2Server([USER, "bob@sandbox.test"]) as srv:
        yield srv


@pytest.fixture
def env(server: OAuth2Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = server.env("microsoft")
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


@pytest.fixture(autouse=True)
def _clean_caches() -> Iterator[None]:
    yield
    tokens._memory.clear()
    tokens._refused.clear()
    tokens._rotated.clear()


def make_account(name: str = "work", email: str = USER, client_id: str = TEST_CLIENT_ID) -> Account:
    server = Server("localhost", 993, Security.SSL, email, auth=AuthMethod.OAUTH2)
    smtp = SmtpServer("localhost", 465, Security.SSL, email, auth=AuthMethod.OAUTH2)
    return Account(
        name=name,
        email=email,
        protocol=Protocol.IMAP,
        incoming=server,
        smtp=smtp,
        oauth2=OAuth2Settings(provider="microsoft", client_id=client_id),
    )


def browser_for(show: list[str] | None = None, *, works: bool = True):  # type: ignore[no-untyped-def]
    """A 'browser' that follows the authorization redirect back to our listener."""

    def open_browser(url: str) -> bool:
        if show is not None:
            show.append(url)
        if not works:
            # no browser here: the user opens the printed URL elsewhere (we do, in a thread)
            threading.Thread(
                target=httpx2.get, args=(url,), kwargs={"follow_redirects": True}
            ).start()
            return False
        resp = httpx2.get(url, follow_redirects=True)
        assert resp.status_code == 200, resp.text
        return True

    return open_browser


# --- the flows ---------------------------------------------------------------------------


def test_browser_flow_uses_pkce_s256_and_yields_working_tokens(
    server: OAuth2Server, env: dict[str, str]
) -> None:
    provider = resolve_provider(
        OAuth2Settings(provider="microsoft", client_id=TEST_CLIENT_ID), account_name="work"
    )
    urls: list[str] = []
    token = flows.sign_in_browser(
        provider, account_name="work", login_hint=USER, open_browser=browser_for(urls)
    )
    query = parse_qs(urlsplit(urls[0]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"][0].startswith("http://localhost:")
    assert "offline_access" in query["scope"][0].split()
    assert server.stats.pkce_methods == ["S256"]
    assert token.refresh_token
    info = server.introspect(token.access_token)
    assert info["active"] is True and info["username"] == USER


def test_browser_flow_prints_url_when_no_browser_opens(
    server: OAuth2Server, env: dict[str, str]
) -> None:
    provider = resolve_provider(
        OAuth2Settings(provider="microsoft", client_id=TEST_CLIENT_ID), account_name="work"
    )
    shown: list[tuple[str, bool]] = []
    token = flows.sign_in_browser(
        provider,
        account_name="work",
        open_browser=browser_for(works=False),
        show_url=lambda url, opened: shown.append((url, opened)),
    )
    assert len(shown) == 1 and shown[0][1] is False
    assert shown[0][0].startswith(server.authorize_url)
    assert server.token_active(token.access_token)


def test_server_verifies_pkce(server: OAuth2Server) -> None:
    verifier = "v" * 50
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    redirect = "http://localhost:9/"

    def get_code(with_challenge: bool = True) -> httpx2.Response:
        params = {
            "response_type": "code",
            "client_id": TEST_CLIENT_ID,
            "redirect_uri": redirect,
            "scope": "mail",
            "state": "s",
        }
        if with_challenge:
            params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
        return httpx2.get(server.authorize_url, params=params)

    def exchange(code: str, code_verifier: str) -> httpx2.Response:
        return httpx2.post(
            server.token_url,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect,
                "client_id": TEST_CLIENT_ID,
                "code_verifier": code_verifier,
            },
        )

    def code_of(resp: httpx2.Response) -> str:
        assert resp.status_code == 302
        return parse_qs(urlsplit(resp.headers["location"]).query)["code"][0]

    wrong = exchange(code_of(get_code()), "w" * 50)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    right = exchange(code_of(get_code()), verifier)
    assert right.status_code == 200 and right.json()["access_token"]
    # PKCE is required of public clients: a code obtained without it is not exchanged
    no_pkce = httpx2.post(
        server.token_url,
        data={
            "grant_type": "authorization_code",
            "code": code_of(get_code(with_challenge=False)),
            "redirect_uri": redirect,
            "client_id": TEST_CLIENT_ID,
        },
    )
    assert no_pkce.status_code == 400 and no_pkce.json()["error"] == "invalid_request"


def test_declined_sign_in_is_a_clear_error(server: OAuth2Server, env: dict[str, str]) -> None:
    server.deny = True
    provider = resolve_provider(
        OAuth2Settings(provider="microsoft", client_id=TEST_CLIENT_ID), account_name="work"
    )
    with pytest.raises(AuthError) as err:
        flows.sign_in_browser(provider, account_name="work", open_browser=browser_for())
    assert "declined" in err.value.message
    assert err.value.hint is not None and "mailbag account login work" in err.value.hint


def test_device_flow_polls_until_approved(server: OAuth2Server, env: dict[str, str]) -> None:
    provider = resolve_provider(
        OAuth2Settings(provider="microsoft", client_id=TEST_CLIENT_ID), account_name="work"
    )
    codes: list[flows.DeviceCode] = []
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 3:  # the user finishes on their phone after a while
            httpx2.get(
                codes[0].verification_uri, params={"user_code": codes[0].user_code, "user": USER}
            ).raise_for_status()

    token = flows.sign_in_device(provider, account_name="work", show_code=codes.append, sleep=sleep)
    assert codes[0].user_code and codes[0].verification_uri.endswith("/device")
    assert len(polls) == 3 and all(p >= 1 for p in polls)
    assert server.stats.token_requests["urn:ietf:params:oauth:grant-type:device_code"] == 3
    assert server.introspect(token.access_token)["username"] == USER


def test_device_flow_denied(server: OAuth2Server, env: dict[str, str]) -> None:
    provider = resolve_provider(
        OAuth2Settings(provider="microsoft", client_id=TEST_CLIENT_ID), account_name="work"
    )
    codes: list[flows.DeviceCode] = []

    def sleep(seconds: float) -> None:
        server.approve_device(codes[0].user_code, USER, approve=False)

    with pytest.raises(AuthError) as err:
        flows.sign_in_device(provider, account_name="work", show_code=codes.append, sleep=sleep)
    assert err.value.fields["cause"] == "denied"


def test_no_client_id_says_how_to_register(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAILBAG_OAUTH2_MICROSOFT_CLIENT_ID", raising=False)
    with pytest.raises(ConfigError) as err:
        resolve_provider(OAuth2Settings(provider="microsoft"), account_name="work", env={})
    hint = err.value.hint or ""
    assert "App registrations" in hint and "http://localhost" in hint
    assert "--oauth-client-id" in hint and "[oauth2.microsoft]" in hint
    with pytest.raises(ConfigError) as err:
        resolve_provider(OAuth2Settings(provider="google"), account_name="g", env={})
    assert "Desktop app" in (err.value.hint or "")


def test_provider_wide_client_id_and_env_override() -> None:
    shared = {"google": OAuth2Settings(provider="google", client_id="shared-id")}
    p = resolve_provider(
        OAuth2Settings(provider="google"),
        account_name="g",
        provider_defaults=shared,
        env={"MAILBAG_OAUTH2_GOOGLE_TOKEN_URL": "http://127.0.0.1:1/token"},
    )
    assert p.client_id == "shared-id"
    assert p.token_url == "http://127.0.0.1:1/token"
    assert p.authorize_url == "https://accounts.google.com/o/oauth2/v2/auth"
    assert p.scopes == ("https://mail.google.com/",)
    assert p.authorize_params["access_type"] == "offline"
    ms = resolve_provider(
        OAuth2Settings(provider="microsoft", client_id="x", tenant="consumers"),
        account_name="m",
        env={},
    )
    assert ms.authorize_url == "https://login.microsoftonline.com/consumers/oauth2/v2.0/authorize"


# --- tokens: keyring, cache, refresh, revocation --------------------------------------------


@pytest.fixture
def home(mailbag_home: Path) -> Paths:
    return Paths.from_env()


def test_sign_in_keeps_refresh_token_in_keyring_and_caches_access(
    server: OAuth2Server,
    env: dict[str, str],
    memory_keyring,
    home: Paths,  # type: ignore[no-untyped-def]
) -> None:
    account = make_account()
    token = auth.sign_in(account, paths=home, open_browser=browser_for())
    assert memory_keyring.store[("mailbag", "work:incoming")] == token.refresh_token
    assert '"expires_at"' in memory_keyring.store[("mailbag", "work:oauth2-access")]
    # a fresh process (empty memory) reuses the cached access token: no token request
    tokens._memory.clear()
    before = dict(server.stats.token_requests)
    assert auth.get_access_token(account, paths=home) == token.access_token
    assert server.stats.token_requests == before


def test_access_token_is_refreshed_before_it_expires(
    server: OAuth2Server,
    env: dict[str, str],
    memory_keyring,  # type: ignore[no-untyped-def]
    home: Paths,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # short-lived tokens, fresh for the first 30 s. (Before: a 3 s token and a 2 s
    # margin, so the first check failed when more than 1 s passed after the sign-in,
    # and a 1.2 s sleep: a loaded machine broke it.) The time left is not waited for:
    # the margin grows past it, as time passing would bring the expiry within it
    server.access_ttl = 60
    monkeypatch.setattr(tokens, "REFRESH_MARGIN", 30.0)
    account = make_account()
    first = auth.sign_in(account, paths=home, open_browser=browser_for())
    assert auth.get_access_token(account, paths=home) == first.access_token
    assert server.stats.token_requests.get("refresh_token", 0) == 0
    monkeypatch.setattr(tokens, "REFRESH_MARGIN", 61.0)  # now within the margin: must refresh
    second = auth.get_access_token(account, paths=home)
    assert second != first.access_token
    assert server.stats.token_requests["refresh_token"] == 1
    assert server.token_active(second)
    # the rotated refresh token replaced the old one in the keyring
    stored = memory_keyring.store[("mailbag", "work:incoming")]
    assert stored != first.refresh_token


def _command_account(server: OAuth2Server) -> tuple[Account, str]:
    """An account whose refresh token (issued for the provider's scopes) is printed by a
    command, read-only for mailbag; and that token."""
    from mailbag.config.model import SecretRef, SecretSource
    from mailbag.record import replace

    account = make_account("cmd")
    assert account.oauth2 is not None
    scopes = " ".join(resolve_provider(account.oauth2, account_name="cmd").scopes)
    refresh_token = server.issue(USER, scope=scopes).refresh_token
    assert refresh_token
    ref = SecretRef(SecretSource.COMMAND, f"echo {refresh_token}")
    return replace(account, incoming=replace(account.incoming, secret=ref)), refresh_token


def test_a_rotated_refresh_token_from_a_command_is_kept_for_the_process(
    server: OAuth2Server, env: dict[str, str], home: Paths
) -> None:
    """The provider retires a refresh token when it issues a new one; a command's token
    cannot be replaced, so the process keeps the new one and refreshes with it later
    (a TUI or `watch` session outlives its access token), instead of the retired one."""
    account, issued = _command_account(server)
    first = auth.get_access_token(account, paths=home)
    assert not server.refresh_token_active(issued)  # rotated away
    second = auth.get_access_token(account, force_refresh=True, paths=home)
    assert second != first and server.token_active(second)
    assert server.stats.token_requests["refresh_token"] == 2


def test_threads_waiting_for_a_refresh_take_its_token(
    server: OAuth2Server, env: dict[str, str], home: Paths
) -> None:
    """Threads that needed a token at the same moment: one refreshes, the others wait
    for it and use what it got (not the command's retired refresh token)."""
    import fcntl
    import os
    import time

    account, _issued = _command_account(server)
    home.state_dir.mkdir(parents=True, exist_ok=True)
    got: list[str] = []
    failed: list[BaseException] = []

    def need_token() -> None:
        try:
            got.append(auth.get_access_token(account, paths=home))
        except BaseException as exc:  # reported by the assertion below
            failed.append(exc)

    # hold the account's refresh lock (another process refreshing) while both ask
    fd = os.open(home.state_dir / "oauth2-cmd.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        workers = [threading.Thread(target=need_token) for _ in range(2)]
        for worker in workers:
            worker.start()
        time.sleep(0.5)  # both found no token and wait for the lock
        fcntl.flock(fd, fcntl.LOCK_UN)
        for worker in workers:
            worker.join(30)
    finally:
        os.close(fd)
    assert failed == [] and len(got) == 2
    assert got[0] == got[1] and server.token_active(got[0])
    assert server.stats.token_requests["refresh_token"] == 1


def test_revoked_refresh_token_asks_to_sign_in_again_once(
    server: OAuth2Server,
    env: dict[str, str],
    memory_keyring,  # type: ignore[no-untyped-def]
    home: Paths,
) -> None:
    account = make_account()
    auth.sign_in(account, paths=home, open_browser=browser_for())
    assert server.revoke_user(USER) == 1
    with pytest.raises(AuthError) as err:
        auth.get_access_token(account, force_refresh=True, paths=home)
    assert err.value.hint == "sign in again: mailbag account login work"
    assert server.stats.token_requests["refresh_token"] == 1  # no retry loop


def test_never_signed_in_asks_to_sign_in(
    server: OAuth2Server,
    env: dict[str, str],
    memory_keyring,
    home: Paths,  # type: ignore[no-untyped-def]
) -> None:
    with pytest.raises(AuthError) as err:
        auth.get_access_token(make_account("fresh"), paths=home)
    assert err.value.hint == "sign in again: mailbag account login fresh"


def test_token_login_retries_once_with_a_fresh_token(
    server: OAuth2Server,
    env: dict[str, str],
    memory_keyring,
    home: Paths,  # type: ignore[no-untyped-def]
) -> None:
    account = make_account()
    first = auth.sign_in(account, paths=home, open_browser=browser_for())
    server.expire_access_tokens()  # the server says no before our clock does
    seen: list[tuple[str, list[bytes]]] = []

    def authenticate(mech: str, responses: list[bytes]) -> None:
        seen.append((mech, responses))
        token = responses[0].split(b"auth=Bearer ")[1].split(b"\x01")[0].decode()
        if not server.token_active(token):
            raise AuthError("NO [AUTHENTICATIONFAILED]")

    used = auth.sasl_token_login(
        account, account.incoming, {"PLAIN", "OAUTHBEARER", "XOAUTH2"}, authenticate, paths=home
    )
    assert used.value == "OAUTHBEARER"
    assert len(seen) == 2
    assert first.access_token.encode() in seen[0][1][0]
    assert seen[0][1][0].startswith(b"n,a=alice@sandbox.test,\x01host=localhost\x01port=993\x01")
    assert seen[0][1][1] == b"\x01"
    # the refused token is never handed out again
    assert auth.get_access_token(account, paths=home) != first.access_token

    def always_no(mech: str, responses: list[bytes]) -> None:
        raise AuthError("NO [AUTHENTICATIONFAILED]")

    with pytest.raises(AuthError) as err:
        auth.sasl_token_login(account, account.incoming, {"XOAUTH2"}, always_no, paths=home)
    assert err.value.fields["cause"] == "token-refused"


def test_server_without_token_mechanisms(
    server: OAuth2Server,
    env: dict[str, str],
    memory_keyring,
    home: Paths,  # type: ignore[no-untyped-def]
) -> None:
    with pytest.raises(AuthError) as err:
        auth.sasl_token_login(
            make_account(), make_account().incoming, {"PLAIN", "LOGIN"}, lambda m, r: None
        )
    assert "offers no OAuth2 login" in err.value.message
