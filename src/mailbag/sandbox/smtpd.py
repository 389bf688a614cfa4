"""A real SMTP submission server on loopback, built on aiosmtpd.

Two listeners: STARTTLS (like port 587) and implicit TLS (like port 465).
AUTH PLAIN/LOGIN is required before MAIL FROM there; with `without_auth` a third
listener (implicit TLS, `open_port`) takes mail without AUTH, as an ISP's server
does for its own network (it still refuses to relay), the size limit is advertised,
and accepted mail for sandbox users is delivered to Dovecot over LMTP, so a
message sent through it really arrives in the recipient's INBOX. Mail for
other domains is refused as relaying unless `relay` is on, in which case it is
kept in `relayed` for tests to inspect.
"""

from __future__ import annotations

import errno
import json
import smtplib
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mailbag.sandbox.certs import SandboxCerts


@dataclass
class RelayedMessage:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class SmtpPolicy:
    """Switches tests flip to provoke the failures users meet."""

    relay: bool = False  # accept mail for other domains (kept in `relayed`)
    reject_data: str | None = None  # e.g. "554 5.7.1 Message rejected as spam"
    auth_error: str | None = None  # e.g. "535 5.7.139 Authentication unsuccessful, ..."
    save_sent: bool = False  # file a copy in the sender's Sent folder, as Gmail does
    relayed: list[RelayedMessage] = field(default_factory=list)


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, smtp: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.server.is_local(address) or self.server.policy.relay:
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 OK"
        return f"554 5.7.1 <{address}>: Relay access denied"

    async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
        policy = self.server.policy
        if policy.reject_data:
            return policy.reject_data
        data: bytes = envelope.original_content or envelope.content
        local = [r for r in envelope.rcpt_tos if self.server.is_local(r)]
        remote = [r for r in envelope.rcpt_tos if not self.server.is_local(r)]
        if remote:
            policy.relayed.append(RelayedMessage(envelope.mail_from, remote, data))
        if local:
            try:
                self.server.deliver(envelope.mail_from, local, data)
            except (OSError, smtplib.SMTPException) as exc:
                return f"451 4.3.0 local delivery failed, try again later ({exc})"
        if policy.save_sent and session.auth_data:
            sent_box = f"{session.auth_data}+Sent@{self.server.domain}"
            self.server.deliver(envelope.mail_from, [sent_box], data)
        return "250 2.0.0 OK: queued"


#: the XOAUTH2/OAUTHBEARER error challenge (the JSON Google and RFC 7628 send)
_TOKEN_ERROR = json.dumps({"status": "invalid_token", "schemes": "bearer", "scope": "mail"})


def parse_xoauth2(payload: bytes) -> tuple[str, str] | None:
    """(user, token) from `user=U^Aauth=Bearer T^A^A`, or None if malformed."""
    fields = dict(
        part.split("=", 1)
        for part in payload.decode("utf-8", "replace").split("\x01")
        if "=" in part
    )
    return _user_and_token(fields.get("user", ""), fields.get("auth", ""))


def parse_oauthbearer(payload: bytes) -> tuple[str, str] | None:
    """(user, token) from an RFC 7628 initial response, or None if malformed."""
    text = payload.decode("utf-8", "replace")
    gs2, _, rest = text.partition("\x01")
    user = ""
    for item in gs2.split(","):
        if item.startswith("a="):
            user = item[2:].replace("=2C", ",").replace("=3D", "=")
    fields = dict(part.split("=", 1) for part in rest.split("\x01") if "=" in part)
    return _user_and_token(user, fields.get("auth", ""))


def _user_and_token(user: str, auth: str) -> tuple[str, str] | None:
    scheme, _, token = auth.partition(" ")
    if not user or scheme.lower() != "bearer" or not token:
        return None
    return user, token.strip()


class _TokenHandler(_Handler):
    """Adds XOAUTH2 and OAUTHBEARER (aiosmtpd finds `auth_*` methods on the handler);
    tokens are checked at the authorization server's introspection endpoint."""

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> Any:
        return await self._token_auth(server, args, parse_xoauth2)

    async def auth_OAUTHBEARER(self, server: Any, args: list[str]) -> Any:
        return await self._token_auth(server, args, parse_oauthbearer)

    async def _token_auth(
        self, server: Any, args: list[str], parse: Callable[[bytes], tuple[str, str] | None]
    ) -> Any:
        import asyncio
        import base64
        import binascii

        from aiosmtpd.smtp import MISSING, AuthResult

        if len(args) == 2:
            try:
                payload = base64.b64decode(args[1], validate=True)
            except binascii.Error:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        else:
            answer = await server.challenge_auth("")
            if answer is MISSING:
                return AuthResult(success=False, handled=True)
            payload = answer
        parsed = parse(payload)
        if parsed is None:
            return AuthResult(success=False, handled=False, message="501 5.5.2 malformed token")
        user, token = parsed
        loop = asyncio.get_running_loop()
        local = await loop.run_in_executor(None, self.server.check_token, user, token)
        if local is not None:
            return AuthResult(success=True, auth_data=local)
        # as Gmail does: an error challenge first, the client answers, then the refusal
        if await server.challenge_auth(_TOKEN_ERROR) is MISSING:
            return AuthResult(success=False, handled=True)
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Username and token not accepted"
        )


class SmtpServer:
    """Both submission listeners; `start()` and `stop()` run them in threads."""

    def __init__(
        self,
        certs: SandboxCerts,
        users: Mapping[str, str],
        domain: str,
        lmtp_port: int,
        *,
        size_limit: int = 50 * 1024 * 1024,
        introspection: tuple[str, str, str] | None = None,
        without_auth: bool = False,
    ) -> None:
        from mailbag.sandbox.dovecot import free_ports

        self.certs = certs
        self.users = dict(users)
        self.domain = domain
        self.lmtp_port = lmtp_port
        self.size_limit = size_limit
        self.policy = SmtpPolicy()
        #: (url, client id, client secret) of the token introspection endpoint
        self.introspection = introspection
        self.submission_port, self.smtps_port, open_port = free_ports(3)
        #: implicit TLS, no AUTH offered or needed (only with `without_auth`)
        self.open_port = open_port if without_auth else None
        self._controllers: list[Any] = []
        self._lock = threading.Lock()

    def is_local(self, address: str) -> bool:
        local, _, domain = address.strip("<>").rpartition("@")
        return domain.lower() == self.domain and local.split("+")[0] in self.users

    def deliver(self, mail_from: str, recipients: list[str], data: bytes) -> None:
        # one LMTP transaction per recipient: LMTP answers DATA once per recipient,
        # which smtplib's sendmail does not read (it then fails after delivering)
        with smtplib.LMTP("127.0.0.1", self.lmtp_port) as lmtp:
            for rcpt in recipients:
                lmtp.sendmail(mail_from or "<>", [rcpt], data)

    def check_token(self, user: str, token: str) -> str | None:
        """The local part of `user` if the token is active and was issued to `user`."""
        import httpx2

        if self.introspection is None:
            return None
        url, client_id, secret = self.introspection
        try:
            resp = httpx2.post(url, data={"token": token}, auth=(client_id, secret), timeout=5)
            info = resp.json()
        except (httpx2.HTTPError, ValueError):
            return None
        if not isinstance(info, dict) or info.get("active") is not True:
            return None
        if str(info.get("username", "")).lower() != user.lower():
            return None
        local, _, domain = user.rpartition("@")
        if local in self.users and domain.lower() == self.domain:
            return local
        return None

    def _authenticator(self) -> Callable[..., Any]:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        def authenticate(
            server: Any, session: Any, envelope: Any, mechanism: str, data: Any
        ) -> Any:
            if self.policy.auth_error:
                # a provider-specific refusal; handled=True because we answer ourselves
                return AuthResult(success=False, handled=False, message=self.policy.auth_error)
            if not isinstance(data, LoginPassword):
                return AuthResult(success=False, handled=False)
            user = data.login.decode("utf-8", "replace")
            local = user.split("@")[0]
            password = data.password.decode("utf-8", "replace")
            if self.users.get(local) == password and (
                "@" not in user or user.split("@", 1)[1].lower() == self.domain
            ):
                return AuthResult(success=True, auth_data=local)
            # handled=False: aiosmtpd then answers 535 itself (True would leave the client hanging)
            return AuthResult(success=False, handled=False)

        return authenticate

    def _server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.certs.cert_file), str(self.certs.key_file))
        return ctx

    def start(self) -> None:
        """Start the listeners. `free_ports` can race with other processes on a busy
        machine (seen: "address already in use" binding one of the picked ports): then
        new ports are picked and the start tried again, as Dovecot's (`Dovecot.start`)."""
        from mailbag.sandbox.dovecot import free_ports

        for attempt in range(3):
            try:
                self._start_once()
                return
            except OSError as exc:
                self.stop()
                if attempt == 2 or exc.errno != errno.EADDRINUSE:
                    raise
                self.submission_port, self.smtps_port, open_port = free_ports(3)
                if self.open_port is not None:
                    self.open_port = open_port

    def _start_once(self) -> None:
        import logging

        from aiosmtpd.controller import Controller

        # aiosmtpd logs a deprecation notice on every AUTH (its own use of login_data),
        # which would land on the demo user's terminal; its errors still show
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        from aiosmtpd.smtp import SMTP

        class ImplicitTLSSMTP(SMTP):
            # aiosmtpd only counts STARTTLS as TLS; on the implicit-TLS port the
            # transport is TLS from the first byte, so AUTH is allowed there.
            def connection_made(self, transport: Any) -> None:
                super().connection_made(transport)
                if transport.get_extra_info("ssl_object") is not None:
                    self._auth_require_tls = False

        class ImplicitTLSController(Controller):
            def factory(self) -> SMTP:
                return ImplicitTLSSMTP(self.handler, **self.SMTP_kwargs)

        common: dict[str, Any] = {
            "authenticator": self._authenticator(),
            "auth_required": True,
            "data_size_limit": self.size_limit,
            "enable_SMTPUTF8": True,
            "ident": "mailbag sandbox ESMTP",
        }
        handler = _TokenHandler(self) if self.introspection else _Handler(self)
        submission = Controller(
            handler,
            hostname="127.0.0.1",
            port=self.submission_port,
            server_hostname="localhost",
            **common,
            tls_context=self._server_context(),
            require_starttls=True,
            auth_require_tls=True,
        )
        smtps = ImplicitTLSController(
            handler,
            hostname="127.0.0.1",
            port=self.smtps_port,
            server_hostname="localhost",
            ssl_context=self._server_context(),
            **common,
            auth_require_tls=True,
        )
        controllers = [submission, smtps]
        if self.open_port is not None:
            controllers.append(
                ImplicitTLSController(
                    handler,
                    hostname="127.0.0.1",
                    port=self.open_port,
                    server_hostname="localhost",
                    ssl_context=self._server_context(),
                    **{**common, "auth_required": False, "authenticator": None},
                )
            )
        with self._lock:
            for i, c in enumerate(controllers):
                try:
                    c.start()
                except BaseException:
                    # its thread ended at the failed bind; its event loop, and those of
                    # the controllers not started yet, are left open (`stop` closes the
                    # ones started)
                    c.stop(no_assert=True)
                    for left in controllers[i:]:
                        left.loop.close()
                    raise
                self._controllers.append(c)

    def stop(self) -> None:
        with self._lock:
            while self._controllers:
                controller = self._controllers.pop()
                controller.stop()
                # aiosmtpd creates an event loop per controller and leaves it open
                if not controller.loop.is_closed():
                    controller.loop.close()

    @property
    def running(self) -> bool:
        return bool(self._controllers)
