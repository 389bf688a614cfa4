"""Real mail servers on loopback: Dovecot (IMAP, POP3, LMTP) and an SMTP submission server.

Used by the test suite, the benchmarks and `mailbag demo`. Everything lives in
one private directory; certificates come from a per-run CA whose file clients
trust explicitly. Nothing here ever talks to the internet.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from mailbag.sandbox.certs import SandboxCerts, make_certs
from mailbag.sandbox.control import ImapControl
from mailbag.sandbox.dovecot import Dovecot, DovecotPorts
from mailbag.sandbox.smtpd import SmtpPolicy, SmtpServer

if TYPE_CHECKING:
    from mailbag.config.model import Account, OAuth2Settings
    from mailbag.sandbox.oauth2 import OAuth2Server

__all__ = ["DEFAULT_USERS", "ImapControl", "Sandbox", "SandboxCerts", "SmtpPolicy"]

DEFAULT_USERS: dict[str, str] = {
    "alice": "alice-secret",
    "bob": "bob-secret",
    "carol": "carol-secret",
}
ALL_SERVICES = frozenset({"imap", "pop3", "lmtp", "smtp"})


class Sandbox:
    """Dovecot + SMTP on loopback with users `DEFAULT_USERS` at `sandbox.test`.

    >>> with Sandbox() as sb:
    ...     sb.deliver("alice", b"Subject: hi\\r\\n\\r\\nhello\\r\\n")
    """

    host = "localhost"  # the name the certificate is issued for

    def __init__(
        self,
        root: Path | None = None,
        users: Mapping[str, str] | None = None,
        *,
        services: Iterable[str] = ALL_SERVICES,
        domain: str = "sandbox.test",
        keep: bool = False,
        oauth2: bool = False,
        imap_without: Iterable[str] = (),
        smtp_without_auth: bool = False,
    ) -> None:
        self._own_root = root is None
        self._uidvalidity = 0  # the last one `reset_uidvalidity` gave
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="mailbag-sandbox-"))
        # Dovecot's unprivileged mail processes must be able to walk into the tree
        self.root.chmod(0o755)
        self.keep = keep
        self.users = dict(users or DEFAULT_USERS)
        self.domain = domain
        self.services = frozenset(services)
        # the mail domain's names too, so discovery tests can serve autoconfig.<domain>
        # and probe imap.<domain> through a local DNS server
        self.certs: SandboxCerts = make_certs(
            self.root / "tls", names=("localhost", domain, f"*.{domain}")
        )
        for f in (self.certs.ca_file, self.certs.cert_file):
            f.chmod(0o644)
        #: with oauth2=True: a local authorization server whose tokens Dovecot and the
        #: SMTP server accept (XOAUTH2, OAUTHBEARER) besides the passwords
        self.oauth2: OAuth2Server | None = None
        introspection_url = None
        if oauth2:
            from mailbag.sandbox.oauth2 import OAuth2Server

            self.oauth2 = OAuth2Server([self.address(u) for u in self.users]).start()
            introspection_url = self.oauth2.introspection_url_with_credentials
        protocols = [p for p in ("imap", "pop3", "lmtp") if p in self.services]
        if "smtp" in self.services and "lmtp" not in protocols:
            protocols.append("lmtp")  # the SMTP server delivers through LMTP
        self.dovecot = Dovecot(
            self.root / "dovecot",
            self.certs,
            self.users,
            protocols=protocols,
            domain=domain,
            oauth2_introspection_url=introspection_url,
            imap_without=imap_without,
        )
        self.smtp: SmtpServer | None = None
        if "smtp" in self.services:
            self.smtp = SmtpServer(
                self.certs,
                self.users,
                domain,
                self.dovecot.ports.lmtp,
                introspection=(
                    (
                        self.oauth2.introspection_url,
                        self.oauth2.resource_client_id,
                        self.oauth2.resource_secret,
                    )
                    if self.oauth2 is not None
                    else None
                ),
                without_auth=smtp_without_auth,
            )

    # --- lifecycle -----------------------------------------------------------------

    def start(self) -> Sandbox:
        self.dovecot.start()
        if self.smtp is not None:
            self.smtp.lmtp_port = self.dovecot.ports.lmtp  # it may have moved at start
            self.smtp.start()
        return self

    def stop(self) -> None:
        if self.smtp is not None:
            self.smtp.stop()
        self.dovecot.stop()
        if self.oauth2 is not None:
            self.oauth2.stop()
        if self._own_root and not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- facts clients need ----------------------------------------------------------

    @property
    def ports(self) -> DovecotPorts:
        return self.dovecot.ports

    @property
    def ca_file(self) -> Path:
        return self.certs.ca_file

    @property
    def smtp_port(self) -> int:
        """Submission with STARTTLS (like 587)."""
        assert self.smtp is not None, "SMTP is turned off in this sandbox"
        return self.smtp.submission_port

    @property
    def smtps_port(self) -> int:
        """Submission with implicit TLS (like 465)."""
        assert self.smtp is not None, "SMTP is turned off in this sandbox"
        return self.smtp.smtps_port

    @property
    def smtp_open_port(self) -> int:
        """Submission with implicit TLS that needs no AUTH (`smtp_without_auth=True`)."""
        assert self.smtp is not None and self.smtp.open_port is not None, (
            "start the sandbox with smtp_without_auth=True"
        )
        return self.smtp.open_port

    @property
    def smtp_policy(self) -> SmtpPolicy:
        assert self.smtp is not None, "SMTP is turned off in this sandbox"
        return self.smtp.policy

    def oauth2_settings(self) -> OAuth2Settings:
        """Account OAuth2 settings (a generic provider) that sign in at this sandbox."""
        from mailbag.config.model import OAuth2Settings

        assert self.oauth2 is not None, "start the sandbox with oauth2=True"
        o = self.oauth2
        return OAuth2Settings(
            provider="generic",
            client_id=o.client_id,
            scopes=("mail",),
            issuer=o.base_url,
            authorize_url=o.authorize_url,
            token_url=o.token_url,
            device_url=o.device_url,
            revocation_url=o.revocation_url,
        )

    def account(
        self,
        user: str,
        *,
        name: str | None = None,
        protocol: str = "imap",
        oauth2: bool = False,
        password_command: bool = False,
    ) -> Account:
        """An account for `user` on this sandbox (implicit TLS; OAuth2 or password).

        The password is looked up in the keyring under the account's name, or with
        `password_command` comes from a command (no keyring needed: CLI tests, benches)."""
        from mailbag.config.model import (
            Account,
            AuthMethod,
            Protocol,
            SecretRef,
            SecretSource,
            Server,
            SmtpServer,
        )
        from mailbag.config.schema import keyring_key
        from mailbag.protocols.transport import Security

        name = name or user
        auth = AuthMethod.OAUTH2 if oauth2 else AuthMethod.PASSWORD
        if password_command:
            ref = SecretRef(SecretSource.COMMAND, f"echo '{self.password(user)}'")
        else:
            ref = SecretRef(SecretSource.KEYRING, keyring_key(name, "incoming"))
        proto = Protocol(protocol)
        port = self.ports.imaps if proto is Protocol.IMAP else self.ports.pop3s
        return Account(
            name=name,
            email=self.address(user),
            protocol=proto,
            incoming=Server(self.host, port, Security.SSL, self.address(user), auth, ref),
            smtp=SmtpServer(
                self.host, self.smtps_port, Security.SSL, self.address(user), auth, ref
            ),
            ca_file=self.ca_file,
            oauth2=self.oauth2_settings() if oauth2 else None,
        )

    def address(self, user: str) -> str:
        return f"{user}@{self.domain}"

    def password(self, user: str) -> str:
        return self.users[user]

    def maildir(self, user: str) -> Path:
        """Where Dovecot keeps `user`'s mail (read it only to check, never to set up)."""
        return self.dovecot.maildir(user)

    # --- putting mail on the server, as other clients would ----------------------------

    def control(self, user: str) -> ImapControl:
        """An independent IMAP session as `user` (stdlib imaplib over verified TLS)."""
        return ImapControl(
            self.host, self.ports.imaps, str(self.ca_file), self.address(user), self.users[user]
        )

    def deliver(self, user: str, message: bytes, folder: str | None = None) -> None:
        """Deliver like an MTA does (LMTP); `folder` uses Dovecot's +detail delivery."""
        import smtplib

        rcpt = f"{user}+{folder}@{self.domain}" if folder else self.address(user)
        with smtplib.LMTP("127.0.0.1", self.ports.lmtp) as lmtp:
            lmtp.sendmail("sender@example.org", [rcpt], message)

    def fill(
        self,
        user: str,
        count: int,
        folder: str = "INBOX",
        *,
        seed: int = 1,
        seen_ratio: float = 0.5,
    ) -> list[int]:
        """Append `count` generated messages to `folder`; returns their UIDs."""
        import random

        from mailbag.sandbox.sample import generate

        rng = random.Random(seed)
        uids = []
        start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()
        with self.control(user) as imap:
            if folder != "INBOX":
                imap.create(folder)
            for i, data in enumerate(generate(count, to=self.address(user), seed=seed)):
                flags = ["\\Seen"] if rng.random() < seen_ratio else []
                if rng.random() < 0.05:
                    flags.append("\\Flagged")
                uids.append(imap.append(folder, data, flags, when=start + i * 2220))
        return uids

    # --- disturbing the server, for fault tests ---------------------------------------

    def reset_uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        """Give `folder` a new UIDVALIDITY (as after a server migration); returns it."""
        import time

        # (a new one each time: two resets in the same second gave the same value, which
        # changed nothing)
        new = self._uidvalidity = max(int(time.time()) % 2_000_000_000 + 7, self._uidvalidity + 1)
        self.dovecot.kick(self.address(user))
        self.dovecot.doveadm(
            "mailbox", "update", "-u", self.address(user), "--uid-validity", str(new), folder
        )
        return new

    def drop_connections(self, user: str) -> None:
        self.dovecot.kick(self.address(user))

    def restart_dovecot(self) -> None:
        self.dovecot.restart()

    def stop_service(self, name: str) -> None:
        if name == "smtp" and self.smtp is not None:
            self.smtp.stop()
        elif name == "dovecot":
            self.dovecot.stop()
        else:
            raise ValueError(f"unknown service {name!r}")

    def start_service(self, name: str) -> None:
        if name == "smtp" and self.smtp is not None:
            self.smtp.start()
        elif name == "dovecot":
            self.dovecot.start()
        else:
            raise ValueError(f"unknown service {name!r}")

    def describe(self) -> dict[str, object]:
        """Connection facts as plain values (for the demo and for humans)."""
        info: dict[str, object] = {
            "root": str(self.root),
            "host": self.host,
            "ca_file": str(self.ca_file),
            "users": {self.address(u): p for u, p in self.users.items()},
            "imap_starttls": self.ports.imap,
            "imaps": self.ports.imaps,
            "pop3_stls": self.ports.pop3,
            "pop3s": self.ports.pop3s,
            "lmtp": self.ports.lmtp,
            "pid": os.getpid(),
        }
        if self.smtp is not None:
            info["smtp_starttls"] = self.smtp.submission_port
            info["smtps"] = self.smtp.smtps_port
            if self.smtp.open_port is not None:
                info["smtps_without_auth"] = self.smtp.open_port
        return info
