"""OAuth2 sign-in flows and token refresh, on authlib's OAuth2 client over httpx2.

Why authlib: one maintained, standards-complete client (RFC 6749, PKCE RFC 7636,
revocation RFC 7009) that works the same for Microsoft, Google and any generic
provider. Its httpx integration runs on httpx2 (the maintained continuation of
httpx, same API; authlib warns when it must fall back to httpx), so the
exceptions caught here are httpx2's. msal was considered for
Microsoft: it would add a second HTTP stack and token cache for one provider,
and it validates authorities against Microsoft's cloud, which gets in the way
of pointing the Microsoft definition at the local test server. authlib has no
device-flow helper on the client side, so the polling loop of RFC 8628 is here;
each poll is an ordinary authlib token request.

Three ways to get tokens:
- `sign_in_browser`: authorization code + PKCE, redirect to a one-shot listener
  on loopback (RFC 8252); the browser is opened, or the URL is shown.
- `sign_in_device`: the device-code flow for machines without a browser.
- `refresh`: a new access token from a refresh token.
Errors come out as mailbag errors with hints; nothing here prints or stores.
"""

from __future__ import annotations

import html
import http.server
import threading
import time
import webbrowser
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2

from mailbag.auth.providers import Provider
from mailbag.errors import AuthError, ConfigError, MailbagError, NetworkError

__all__ = [
    "DeviceCode",
    "TokenSet",
    "refresh",
    "revoke",
    "sign_in_browser",
    "sign_in_device",
]

#: how long a sign-in may take before we give up waiting for the user
SIGN_IN_TIMEOUT = 300.0
HTTP_TIMEOUT = 30.0
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass(frozen=True)
class TokenSet:
    """What the token endpoint gave us."""

    access_token: str
    #: seconds since the epoch when the access token stops working
    expires_at: float
    refresh_token: str | None = None
    scope: str = ""

    @classmethod
    def from_response(cls, data: Mapping[str, Any], now: float | None = None) -> TokenSet:
        now = time.time() if now is None else now
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthError("the sign-in server answered without an access token")
        try:
            expires_in = float(data.get("expires_in", 3600))
        except (TypeError, ValueError):
            expires_in = 3600.0
        refresh_token = data.get("refresh_token")
        return cls(
            access_token=token,
            expires_at=now + expires_in,
            refresh_token=refresh_token if isinstance(refresh_token, str) else None,
            scope=str(data.get("scope", "")),
        )

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        return (time.time() if now is None else now) + seconds >= self.expires_at


@dataclass(frozen=True)
class DeviceCode:
    """What the user must do to finish a device-code sign-in."""

    user_code: str
    verification_uri: str
    expires_in: float
    interval: float
    message: str = ""


def _client(
    provider: Provider, redirect_uri: str | None = None, timeout: float = HTTP_TIMEOUT
) -> Any:
    from authlib.integrations.httpx_client import OAuth2Client

    return OAuth2Client(
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        # a public desktop client has no secret: send only client_id (RFC 8252 8.4)
        token_endpoint_auth_method="client_secret_post" if provider.client_secret else "none",
        revocation_endpoint_auth_method="client_secret_post" if provider.client_secret else "none",
        scope=provider.scope,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        timeout=timeout,
        follow_redirects=False,
    )


def _host(url: str) -> str:
    return urlsplit(url).hostname or url


def _reauth_hint(account_name: str) -> str:
    return f"sign in again: mailbag account login {account_name}"


def _translate(exc: Exception, provider: Provider, account_name: str, url: str) -> MailbagError:
    """authlib/httpx failures -> one mailbag error with a hint."""
    from authlib.integrations.base_client import OAuthError

    if isinstance(exc, httpx2.TimeoutException):
        return NetworkError(
            f"the sign-in server {_host(url)} did not answer in time",
            hint="check your network connection and try again",
            host=_host(url),
        )
    if isinstance(exc, httpx2.HTTPStatusError):
        return AuthError(
            f"the sign-in server {_host(url)} answered HTTP {exc.response.status_code}",
            hint="try again later; if it persists, check the endpoints in config.toml",
            host=_host(url),
        )
    if isinstance(exc, httpx2.HTTPError):
        return NetworkError(
            f"cannot reach the sign-in server {_host(url)}: {exc}",
            hint="check your network connection (and any proxy) and try again",
            host=_host(url),
        )
    if isinstance(exc, OAuthError):
        error = str(exc.error or "")
        detail = f" ({exc.description})" if exc.description else ""
        if error == "invalid_grant":
            return AuthError(
                f"the sign-in of account {account_name!r} has expired or was revoked{detail}",
                hint=_reauth_hint(account_name),
                cause="reauth",
            )
        if error in ("invalid_client", "unauthorized_client"):
            return ConfigError(
                f"{provider.name} refused the OAuth2 client ID {provider.client_id!r}{detail}",
                hint="check the client ID (and secret) you registered, and that the "
                "registration allows desktop/public clients; the README's section "
                "'Signing in with OAuth2' shows the steps",
                cause="client",
            )
        if error == "access_denied":
            return AuthError(
                f"sign-in was declined{detail}",
                hint=f"run mailbag account login {account_name} again and accept the request",
                cause="denied",
            )
        if error == "invalid_scope":
            return ConfigError(
                f"{provider.name} refused the scopes {provider.scope!r}{detail}",
                hint="check the scopes in config.toml and the API permissions of your "
                "client registration",
            )
        return AuthError(f"sign-in failed: {error}{detail}", hint=_reauth_hint(account_name))
    if isinstance(exc, ValueError):
        return AuthError(f"the sign-in server {_host(url)} gave an unusable answer: {exc}")
    raise exc


def _fetch(provider: Provider, account_name: str, url: str, call: Callable[[], Any]) -> TokenSet:
    from authlib.integrations.base_client import OAuthError

    try:
        data = call()
    except (httpx2.HTTPError, OAuthError, ValueError) as exc:
        raise _translate(exc, provider, account_name, url) from None
    return TokenSet.from_response(data)


# --- authorization code + PKCE with a loopback redirect ------------------------------


def _cancelled() -> AuthError:
    return AuthError(
        "sign-in cancelled", hint="start the sign-in again when you are ready", cause="cancelled"
    )


def _wait_for(done: threading.Event, timeout: float, cancel: threading.Event | None) -> bool:
    """Wait until `done` (True) or `timeout` (False); AuthError when `cancel` is set."""
    deadline = time.monotonic() + timeout
    while not done.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
        if cancel is not None and cancel.is_set():
            raise _cancelled()
        if time.monotonic() >= deadline:
            return False
    return True


class _Callback:
    """The one redirect the browser brings back to our loopback listener."""

    def __init__(self) -> None:
        self.params: dict[str, str] | None = None
        self.done = threading.Event()


def _listener(callback: _Callback) -> http.server.HTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            params = {k: v[0] for k, v in query.items()}
            if "code" not in params and "error" not in params:
                # a favicon or a stray request: not the redirect
                self.send_response(404)
                self.end_headers()
                return
            if callback.params is None:
                callback.params = params
            ok = "code" in params
            text = (
                "Signed in. You can close this window and return to mailbag."
                if ok
                else "Sign-in did not complete: "
                + html.escape(params.get("error_description") or params.get("error", ""))
            )
            body = f"<!doctype html><title>mailbag</title><p>{text}</p>".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            callback.done.set()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the redirect carries the authorization code: never log it

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    server.timeout = 0.2
    return server


def sign_in_browser(
    provider: Provider,
    *,
    account_name: str,
    login_hint: str = "",
    show_url: Callable[[str, bool], None] | None = None,
    open_browser: Callable[[str], bool] = webbrowser.open,
    timeout: float = SIGN_IN_TIMEOUT,
    cancel: threading.Event | None = None,
) -> TokenSet:
    """Authorization code + PKCE (S256) with a one-shot listener on 127.0.0.1.

    `open_browser(url)` returns whether a browser was started; `show_url(url, opened)`
    tells the user (the URL must be shown when no browser could be opened). Setting
    `cancel` stops the wait (AuthError with cause "cancelled").
    """
    from authlib.common.security import generate_token

    if not provider.authorize_url:
        raise ConfigError(
            f"the {provider.name} provider has no authorize_url: use the device-code sign-in",
            hint=f"mailbag account login {account_name} --device",
        )
    callback = _Callback()
    server = _listener(callback)
    port = server.server_address[1]
    # "localhost" is what Microsoft and Google let desktop apps register (any port)
    redirect_uri = f"http://localhost:{port}/"
    verifier = generate_token(64)
    extra: dict[str, str] = dict(provider.authorize_params)
    if login_hint:
        extra["login_hint"] = login_hint
    with _client(provider, redirect_uri) as client:
        url, state = client.create_authorization_url(
            provider.authorize_url, code_verifier=verifier, **extra
        )
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set() and not callback.done.is_set():
                server.handle_request()

        thread = threading.Thread(target=serve, name="mailbag-oauth-redirect", daemon=True)
        thread.start()
        try:
            try:
                opened = bool(open_browser(url))
            except webbrowser.Error:
                opened = False
            if show_url is not None:
                show_url(url, opened)
            if not _wait_for(callback.done, timeout, cancel):
                raise AuthError(
                    f"sign-in did not finish within {timeout:.0f} s",
                    hint=f"run mailbag account login {account_name} again (or use --device "
                    "on a machine without a browser)",
                    cause="timeout",
                )
        finally:
            stop.set()
            thread.join(timeout=2)
            server.server_close()
        params = callback.params or {}
        if "error" in params:
            from authlib.integrations.base_client import OAuthError

            raise _translate(
                OAuthError(params["error"], params.get("error_description")),
                provider,
                account_name,
                provider.authorize_url,
            )
        if params.get("state") != state:
            raise AuthError(
                "the sign-in answer did not match the request (state mismatch); ignored",
                hint=f"run mailbag account login {account_name} again",
                cause="state",
            )
        return _fetch(
            provider,
            account_name,
            provider.token_url,
            lambda: client.fetch_token(
                provider.token_url,
                grant_type="authorization_code",
                code=params.get("code", ""),
                code_verifier=verifier,
            ),
        )


# --- device code (RFC 8628) ----------------------------------------------------------


def sign_in_device(
    provider: Provider,
    *,
    account_name: str,
    show_code: Callable[[DeviceCode], None],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    cancel: threading.Event | None = None,
) -> TokenSet:
    """Ask for a user code, show it, poll the token endpoint until the user is done.
    Setting `cancel` stops the polling (AuthError with cause "cancelled")."""
    pause = sleep
    if cancel is not None and sleep is time.sleep:
        stop = cancel

        def pause(seconds: float) -> None:
            stop.wait(seconds)  # wakes up as soon as the user cancels

    from authlib.integrations.base_client import OAuthError

    if not provider.device_url:
        raise ConfigError(
            f"the {provider.name} provider has no device_url, so sign-in without a browser "
            "is not possible with it",
            hint=f"run mailbag account login {account_name} on a machine with a browser, "
            "or set device_url in config.toml if your provider has one",
        )
    with _client(provider) as client:
        data: dict[str, str] = {"client_id": provider.client_id, "scope": provider.scope}
        if provider.client_secret:
            data["client_secret"] = provider.client_secret
        try:
            resp = client.request(
                "POST",
                provider.device_url,
                data=data,
                headers={"Accept": "application/json"},
                withhold_token=True,  # there is no token yet: this asks for one
            )
            answer = resp.json()
        except (httpx2.HTTPError, ValueError) as exc:
            raise _translate(exc, provider, account_name, provider.device_url) from None
        if not isinstance(answer, dict) or resp.status_code >= 400 or "error" in answer:
            err = answer if isinstance(answer, dict) else {}
            raise _translate(
                OAuthError(
                    str(err.get("error", f"HTTP {resp.status_code}")),
                    err.get("error_description"),
                ),
                provider,
                account_name,
                provider.device_url,
            )
        try:
            device_code = str(answer["device_code"])
            code = DeviceCode(
                user_code=str(answer["user_code"]),
                # Google says verification_url, the RFC says verification_uri
                verification_uri=str(answer.get("verification_uri") or answer["verification_url"]),
                expires_in=float(answer.get("expires_in", 900)),
                interval=float(answer.get("interval", 5)),
                message=str(answer.get("message", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AuthError(
                f"the sign-in server {_host(provider.device_url)} gave an unusable device "
                f"code answer (missing {exc})"
            ) from None
        show_code(code)
        interval = max(code.interval, 1.0)
        deadline = clock() + code.expires_in
        while True:
            pause(interval)
            if cancel is not None and cancel.is_set():
                raise _cancelled()
            if clock() > deadline:
                raise AuthError(
                    "the device code expired before sign-in was finished",
                    hint=f"run mailbag account login {account_name} --device again",
                    cause="timeout",
                )
            try:
                token = client.fetch_token(
                    provider.token_url, grant_type=DEVICE_GRANT, device_code=device_code
                )
            except OAuthError as exc:
                if exc.error == "authorization_pending":
                    continue
                if exc.error == "slow_down":
                    interval += 5  # RFC 8628 3.5
                    continue
                if exc.error == "expired_token":
                    raise AuthError(
                        "the device code expired before sign-in was finished",
                        hint=f"run mailbag account login {account_name} --device again",
                        cause="timeout",
                    ) from None
                raise _translate(exc, provider, account_name, provider.token_url) from None
            except (httpx2.HTTPError, ValueError) as exc:
                raise _translate(exc, provider, account_name, provider.token_url) from None
            return TokenSet.from_response(token)


# --- refresh and revoke --------------------------------------------------------------


def refresh(provider: Provider, refresh_token: str, *, account_name: str) -> TokenSet:
    """A new access token (and perhaps a new refresh token). Revoked -> AuthError."""
    with _client(provider) as client:
        token = _fetch(
            provider,
            account_name,
            provider.token_url,
            lambda: client.refresh_token(provider.token_url, refresh_token=refresh_token),
        )
    if token.refresh_token is None:
        # the provider kept the old refresh token valid (no rotation)
        token = TokenSet(token.access_token, token.expires_at, refresh_token, token.scope)
    return token


def revoke(
    provider: Provider, token: str, *, account_name: str, timeout: float = HTTP_TIMEOUT
) -> bool:
    """Ask the provider to revoke `token`; False when it has no revocation endpoint."""
    if not provider.revocation_url:
        return False
    with _client(provider, timeout=timeout) as client:
        try:
            resp = client.revoke_token(
                provider.revocation_url,
                token=token,
                token_type_hint="refresh_token",  # noqa: S106
            )
        except httpx2.HTTPError as exc:
            raise _translate(exc, provider, account_name, provider.revocation_url) from None
    if resp.status_code >= 400:
        raise AuthError(
            f"the sign-in server refused to revoke the token (HTTP {resp.status_code})",
            host=_host(provider.revocation_url),
        )
    return True
