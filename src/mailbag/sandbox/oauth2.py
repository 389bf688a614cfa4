"""A real OAuth2 authorization server on loopback, for the sandbox and the tests.

Built on authlib's framework-independent server components (RFC 6749 code and
refresh grants, RFC 7636 PKCE, RFC 8628 device flow, RFC 7009 revocation,
RFC 7662 introspection), so the protocol logic is a maintained library's, not
ours. authlib ships adapters only for Flask, Django and Starlette, none of
which mailbag depends on; the adapter here is a small `http.server` front end
(parse the request, hand it to authlib, write authlib's answer back).

The "user" approves everything automatically: `GET /authorize` signs in the
user named by `login_hint` (or `default_user`) and redirects at once, so tests
drive the browser leg with httpx. Device codes are approved with
`approve_device()` or `GET /device?user_code=..&user=..`. Dovecot and the
sandbox SMTP server validate tokens through `/introspect` with the resource
server's credentials. Tokens live in memory; nothing is written to disk.
Never expose this server beyond 127.0.0.1.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from mailbag.errors import SandboxError

__all__ = ["RESOURCE_CLIENT_ID", "TEST_CLIENT_ID", "OAuth2Server"]

#: the public (secretless) client mailbag uses against this server
TEST_CLIENT_ID = "mailbag-test-client"
#: the confidential client the mail servers use to introspect tokens
RESOURCE_CLIENT_ID = "sandbox-mail-servers"

MAIL_SCOPES = (
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/POP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
    "offline_access",
    "https://mail.google.com/",
    "mail",
)


@dataclass
class _Client:
    client_id: str
    secret: str | None  # None = public client
    grant_types: tuple[str, ...]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        return " ".join(s for s in scope.split() if s in MAIL_SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # RFC 8252 7.3: loopback redirects may use any port
        parts = urlsplit(redirect_uri)
        return parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1")

    def check_client_secret(self, client_secret: str) -> bool:
        return self.secret is not None and secrets.compare_digest(self.secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.secret is None:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass
class _AuthorizationCode:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> None:
        return None

    def get_auth_time(self) -> None:
        return None

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


@dataclass
class _Token:
    client_id: str
    user: str
    access_token: str
    refresh_token: str | None
    scope: str
    issued_at: float
    expires_in: int
    revoked: bool = False
    #: refresh token cut off (revoked, rotated, or expired by a test)
    refresh_revoked: bool = False

    def check_client(self, client: _Client) -> bool:
        return client.client_id in (self.client_id, RESOURCE_CLIENT_ID)

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def get_expires_at(self) -> float:
        return self.issued_at + self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.get_expires_at()

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> str:
        return self.user


@dataclass
class _Stats:
    """What happened, for tests to check (counts by endpoint / grant type)."""

    token_requests: dict[str, int] = field(default_factory=dict)
    introspections: int = 0
    pkce_methods: list[str] = field(default_factory=list)


class OAuth2Server:
    """The authorization server; `start()` listens on 127.0.0.1 (own port)."""

    def __init__(
        self,
        users: Iterable[str],
        *,
        access_ttl: int = 3600,
        default_user: str | None = None,
    ) -> None:
        self.users = list(users)
        self.access_ttl = access_ttl
        self.default_user = default_user or (self.users[0] if self.users else None)
        #: when True, /authorize answers access_denied (the user clicked "no")
        self.deny = False
        self.resource_secret = secrets.token_urlsafe(24)
        self.stats = _Stats()
        self._lock = threading.RLock()
        self._clients = {
            TEST_CLIENT_ID: _Client(
                TEST_CLIENT_ID,
                None,
                (
                    "authorization_code",
                    "refresh_token",
                    "urn:ietf:params:oauth:grant-type:device_code",
                ),
            ),
            RESOURCE_CLIENT_ID: _Client(RESOURCE_CLIENT_ID, self.resource_secret, ()),
        }
        self._codes: dict[str, _AuthorizationCode] = {}
        self._by_access: dict[str, _Token] = {}
        self._by_refresh: dict[str, _Token] = {}
        self._devices: dict[str, dict[str, Any]] = {}
        self._device_grants: dict[str, tuple[str, bool]] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._authz = self._build()

    # --- facts for clients and for the mail servers ----------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise SandboxError("the OAuth2 server is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def client_id(self) -> str:
        return TEST_CLIENT_ID

    @property
    def resource_client_id(self) -> str:
        return RESOURCE_CLIENT_ID

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def device_url(self) -> str:
        return f"{self.base_url}/devicecode"

    @property
    def revocation_url(self) -> str:
        return f"{self.base_url}/revoke"

    @property
    def introspection_url(self) -> str:
        return f"{self.base_url}/introspect"

    @property
    def introspection_url_with_credentials(self) -> str:
        """For Dovecot, which takes HTTP basic credentials in the URL."""
        return (
            f"http://{RESOURCE_CLIENT_ID}:{self.resource_secret}@127.0.0.1:{self.port}/introspect"
        )

    def env(self, provider: str = "generic") -> dict[str, str]:
        """`MAILBAG_OAUTH2_<PROVIDER>_*` variables pointing `provider` at this server."""
        prefix = f"MAILBAG_OAUTH2_{provider.upper()}_"
        return {
            prefix + "AUTHORIZE_URL": self.authorize_url,
            prefix + "TOKEN_URL": self.token_url,
            prefix + "DEVICE_URL": self.device_url,
            prefix + "REVOCATION_URL": self.revocation_url,
        }

    # --- things tests do ---------------------------------------------------------------

    def issue(self, user: str, ttl: int | None = None, scope: str = "mail") -> _Token:
        """A token pair for `user` without any flow (for server-side tests)."""
        with self._lock:
            token = _Token(
                client_id=TEST_CLIENT_ID,
                user=user,
                access_token=secrets.token_urlsafe(32),
                refresh_token=secrets.token_urlsafe(36),
                scope=scope,
                issued_at=time.time(),
                expires_in=self.access_ttl if ttl is None else ttl,
            )
            self._store(token)
            return token

    def approve_device(self, user_code: str, user: str | None = None, approve: bool = True) -> None:
        with self._lock:
            if user_code not in {d["user_code"] for d in self._devices.values()}:
                raise KeyError(f"unknown user code {user_code!r}")
            self._device_grants[user_code] = (user or self.default_user or "", approve)

    def pending_user_codes(self) -> list[str]:
        with self._lock:
            return [d["user_code"] for d in self._devices.values()]

    def revoke_user(self, user: str) -> int:
        """Revoke every token of `user` (as "sign out everywhere" does); returns how many."""
        with self._lock:
            n = 0
            for token in self._by_access.values():
                if token.user == user and not (token.revoked and token.refresh_revoked):
                    token.revoked = token.refresh_revoked = True
                    n += 1
            return n

    def expire_access_tokens(self, user: str | None = None) -> None:
        """Make current access tokens expired (refresh tokens keep working)."""
        with self._lock:
            for token in self._by_access.values():
                if user is None or token.user == user:
                    token.issued_at = time.time() - token.expires_in - 1

    def refresh_token_active(self, refresh_token: str) -> bool:
        """Whether `refresh_token` would still get new access tokens (not revoked/rotated)."""
        with self._lock:
            token = self._by_refresh.get(refresh_token)
            return token is not None and not token.refresh_revoked

    def token_active(self, access_token: str) -> bool:
        with self._lock:
            token = self._by_access.get(access_token)
            return token is not None and not token.revoked and not token.is_expired()

    def introspect(self, access_token: str) -> dict[str, Any]:
        """The introspection answer for a token, without HTTP (same logic as /introspect)."""
        with self._lock:
            self.stats.introspections += 1
            token = self._by_access.get(access_token)
            if token is None or token.revoked or token.is_expired():
                return {"active": False}
            return self._introspection_payload(token)

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> OAuth2Server:
        if self._httpd is not None:
            return self
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server._dispatch(self, "GET")

            def do_POST(self) -> None:
                server._dispatch(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # requests carry tokens and codes

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sandbox-oauth2",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OAuth2Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- token bookkeeping -------------------------------------------------------------

    def _store(self, token: _Token) -> None:
        self._by_access[token.access_token] = token
        if token.refresh_token:
            self._by_refresh[token.refresh_token] = token

    def _introspection_payload(self, token: _Token) -> dict[str, Any]:
        return {
            "active": True,
            "client_id": token.client_id,
            "token_type": "Bearer",
            "username": token.user,
            "sub": token.user,
            "scope": token.scope,
            "exp": int(token.get_expires_at()),
            "iat": int(token.issued_at),
            "iss": self.base_url if self._httpd is not None else "",
        }

    # --- authlib wiring ------------------------------------------------------------------

    def _build(self) -> Any:
        from authlib.oauth2 import rfc6749, rfc7009, rfc7636, rfc7662, rfc8628
        from authlib.oauth2.rfc6749 import grants
        from authlib.oauth2.rfc6750 import BearerTokenGenerator

        owner = self

        class Server(rfc6749.AuthorizationServer):  # type: ignore[misc]
            def query_client(self, client_id: str) -> _Client | None:
                return owner._clients.get(client_id)

            def save_token(self, token: dict[str, Any], request: Any) -> None:
                owner._store(
                    _Token(
                        client_id=request.client.client_id,
                        user=request.user,
                        access_token=token["access_token"],
                        refresh_token=token.get("refresh_token"),
                        scope=token.get("scope", ""),
                        issued_at=time.time(),
                        expires_in=int(token["expires_in"]),
                    )
                )

            def create_oauth2_request(self, request: Any) -> Any:
                return request

            def handle_response(self, status: int, body: Any, headers: Any) -> Any:
                return status, body, headers

            def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
                pass

        class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")

            def save_authorization_code(self, code: str, request: Any) -> None:
                data = request.payload.data
                owner.stats.pkce_methods.append(str(data.get("code_challenge_method")))
                owner._codes[code] = _AuthorizationCode(
                    code=code,
                    client_id=request.client.client_id,
                    redirect_uri=request.payload.redirect_uri,
                    scope=request.scope,
                    user=request.user,
                    code_challenge=data.get("code_challenge"),
                    code_challenge_method=data.get("code_challenge_method"),
                    expires_at=time.time() + 300,
                )

            def query_authorization_code(self, code: str, client: _Client) -> Any:
                item = owner._codes.get(code)
                if item and item.client_id == client.client_id and item.expires_at > time.time():
                    return item
                return None

            def delete_authorization_code(self, authorization_code: _AuthorizationCode) -> None:
                owner._codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: _AuthorizationCode) -> str:
                return authorization_code.user

        class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")
            INCLUDE_NEW_REFRESH_TOKEN = True  # rotate, as Microsoft does

            def authenticate_refresh_token(self, refresh_token: str) -> _Token | None:
                token = owner._by_refresh.get(refresh_token)
                if token is None or token.refresh_revoked:
                    return None
                return token

            def authenticate_user(self, credential: _Token) -> str:
                return credential.user

            def revoke_old_credential(self, credential: _Token) -> None:
                credential.refresh_revoked = True

        class DeviceGrant(rfc8628.DeviceCodeGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")

            def query_device_credential(self, device_code: str) -> Any:
                data = owner._devices.get(device_code)
                return rfc8628.DeviceCredentialDict(data) if data else None

            def query_user_grant(self, user_code: str) -> tuple[str, bool] | None:
                return owner._device_grants.get(user_code)

            def should_slow_down(self, credential: Any) -> bool:
                return False

        class DeviceEndpoint(rfc8628.DeviceAuthorizationEndpoint):  # type: ignore[misc]
            INTERVAL = 1
            CLIENT_AUTH_METHODS: ClassVar[list[str]] = [
                "none",
                "client_secret_basic",
                "client_secret_post",
            ]

            def get_verification_uri(self) -> str:
                return f"{owner.base_url}/device"

            def save_device_credential(self, client_id: str, scope: str, data: Any) -> None:
                owner._devices[data["device_code"]] = {
                    "client_id": client_id,
                    "scope": scope or "",
                    "user_code": data["user_code"],
                    "expires_at": time.time() + data["expires_in"],
                }

        class Revocation(rfc7009.RevocationEndpoint):  # type: ignore[misc]
            CLIENT_AUTH_METHODS: ClassVar[list[str]] = [
                "none",
                "client_secret_basic",
                "client_secret_post",
            ]

            def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
                return owner._by_refresh.get(token_string) or owner._by_access.get(token_string)

            def revoke_token(self, token: _Token, request: Any) -> None:
                # revoking either one ends the grant (as Google does)
                token.revoked = True
                token.refresh_revoked = True

        class Introspection(rfc7662.IntrospectionEndpoint):  # type: ignore[misc]
            CLIENT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post"]

            def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
                owner.stats.introspections += 1
                return owner._by_access.get(token_string)

            def check_permission(self, token: _Token, client: _Client, request: Any) -> bool:
                return client.client_id == RESOURCE_CLIENT_ID

            def introspect_token(self, token: _Token) -> dict[str, Any]:
                return owner._introspection_payload(token)

        def expires(client: Any, grant_type: str) -> int:
            return owner.access_ttl

        authz = Server()
        authz.register_token_generator(
            "default",
            BearerTokenGenerator(
                lambda *a, **k: secrets.token_urlsafe(32),
                lambda *a, **k: secrets.token_urlsafe(36),
                expires,
            ),
        )
        authz.register_grant(CodeGrant, [rfc7636.CodeChallenge(required=True)])
        authz.register_grant(RefreshGrant)
        authz.register_grant(DeviceGrant)
        authz.register_endpoint(DeviceEndpoint)
        authz.register_endpoint(Revocation)
        authz.register_endpoint(Introspection)
        return authz

    # --- HTTP front end ----------------------------------------------------------------

    def _dispatch(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        from authlib.oauth2.rfc6749 import OAuth2Error

        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        query = dict(parse_qsl(parts.query))
        form = dict(parse_qsl(body.decode("utf-8", "replace"))) if method == "POST" else {}
        request = _make_request(method, f"{self.base_url}{handler.path}", handler, query, form)
        path = parts.path.rstrip("/")
        with self._lock:
            try:
                if path == "/authorize" and method == "GET":
                    result = self._authorize(request, query)
                elif path == "/token" and method == "POST":
                    grant = form.get("grant_type", "?")
                    self.stats.token_requests[grant] = self.stats.token_requests.get(grant, 0) + 1
                    result = self._authz.create_token_response(request)
                elif path == "/devicecode" and method == "POST":
                    result = self._authz.create_endpoint_response("device_authorization", request)
                elif path == "/device":
                    result = self._device_page({**query, **form})
                elif path == "/revoke" and method == "POST":
                    result = self._authz.create_endpoint_response("revocation", request)
                elif path == "/introspect" and method == "POST":
                    result = self._authz.create_endpoint_response("introspection", request)
                else:
                    result = (404, {"error": "not_found"}, [])
            except OAuth2Error as exc:
                result = (exc.status_code, dict(exc.get_body()), exc.get_headers())
        _write(handler, *result)

    def _authorize(self, request: Any, query: dict[str, str]) -> Any:
        user = query.get("login_hint") or self.default_user
        grant = self._authz.get_consent_grant(request, end_user=user)
        return self._authz.create_authorization_response(
            request, grant_user=None if self.deny else user, grant=grant
        )

    def _device_page(self, params: dict[str, str]) -> Any:
        code = params.get("user_code", "")
        try:
            self.approve_device(code, params.get("user"), params.get("deny") != "1")
        except KeyError:
            return 404, {"error": "unknown user_code"}, []
        return 200, {"ok": True}, []


def _make_request(
    method: str,
    uri: str,
    handler: BaseHTTPRequestHandler,
    query: dict[str, str],
    form: dict[str, str],
) -> Any:
    from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload, OAuth2Request

    class Request(OAuth2Request):  # type: ignore[misc]
        @property
        def args(self) -> dict[str, str]:
            return query

        @property
        def form(self) -> dict[str, str]:
            return form

    request = Request(method, uri, headers=dict(handler.headers.items()))
    request.payload = BasicOAuth2Payload({**query, **form})
    return request


def _write(handler: BaseHTTPRequestHandler, status: int, body: Any, headers: Any) -> None:
    if isinstance(body, bytes):
        data = body
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = json.dumps(body).encode()
    handler.send_response(status)
    sent_type = False
    for name, value in headers or []:
        if name.lower() == "content-length":
            continue
        sent_type = sent_type or name.lower() == "content-type"
        handler.send_header(name, value)
    if not sent_type and data:
        handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
