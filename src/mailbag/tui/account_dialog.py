"""The account dialog: the manual settings form with a live "Test Account Settings",
for a new account (A) or an existing one (E)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from mailbag.textsafe import clean_terminal

if TYPE_CHECKING:
    from mailbag.config.model import Account, SecretRef
    from mailbag.diagnose import StepResult
    from mailbag.tui.view import MailView

SECURITY = [("SSL/TLS", "ssl"), ("STARTTLS", "starttls"), ("None (insecure)", "none")]
MARK = {"ok": "[green]✓[/]", "failed": "[red]✗[/]", "skipped": "[dim]-[/]"}
INSECURE = (
    "[red]No encryption: your mail and your password are readable by anyone on the network path.[/]"
)


class AccountDialog(ModalScreen[str | None]):
    """Address -> discovery -> IMAP or POP -> logins -> Test Account Settings -> Save.

    With `existing`, the form starts filled in from that account; a blank password
    keeps the stored one, and Save replaces the account under the same name."""

    BINDINGS: ClassVar[list[BindingType]] = [("escape", "cancel", "cancel")]

    def __init__(self, view: MailView, existing: Account | None = None) -> None:
        super().__init__()
        self.view = view
        self.existing = existing
        self.tested: Account | None = None

    def compose(self) -> ComposeResult:
        old = self.existing
        keep = "blank: keep the stored password"
        with VerticalScroll(id="account-dialog"):
            title = f"Edit account {old.name}" if old else "Add an account"
            yield Label(clean_terminal(title), classes="title", markup=False)
            yield Input(placeholder="you@example.com", id="email")
            yield Input(placeholder="user name (blank: the address)", id="username")
            yield Input(
                placeholder=keep if old else "password or app password",
                password=True,
                id="password",
            )
            yield Button("Find settings", id="discover")
            yield Static("", id="found")
            with Horizontal(classes="row"):
                yield Label("Incoming", classes="rowlabel")
                yield Select(
                    [
                        ("IMAP: mail stays on the server, for several devices", "imap"),
                        ("POP3: download to this computer", "pop3"),
                    ],
                    value="imap",
                    id="protocol",
                    allow_blank=False,
                )
            with Horizontal(classes="row"):
                yield Label("  server", classes="rowlabel")
                yield Input(placeholder="imap.example.com", id="in-host", classes="host")
                yield Input(placeholder="993", id="in-port", classes="port")
                yield Select(SECURITY, value="ssl", id="in-sec", allow_blank=False)
            with Horizontal(classes="row"):
                yield Label("Outgoing", classes="rowlabel")
                yield Input(placeholder="smtp.example.com", id="out-host", classes="host")
                yield Input(placeholder="465", id="out-port", classes="port")
                yield Select(SECURITY, value="ssl", id="out-sec", allow_blank=False)
            with Horizontal(classes="row"):
                yield Checkbox("requires authentication", True, id="smtp-auth")
                yield Checkbox("same user name and password as incoming", True, id="smtp-same")
            with Horizontal(classes="row", id="smtp-login"):
                yield Label("  login", classes="rowlabel")
                yield Input(placeholder="SMTP user name", id="smtp-user", classes="host")
                yield Input(
                    placeholder=keep if old else "SMTP password",
                    password=True,
                    id="smtp-password",
                    classes="host",
                )
            with Horizontal(classes="row"):
                yield Label("CA file", classes="rowlabel")
                yield Input(placeholder="only for a private server's own CA", id="ca-file")
            yield Static(INSECURE, id="insecure-warning")
            yield Checkbox(
                "I understand, and want to use an unencrypted connection anyway", id="insecure-ok"
            )
            with Horizontal(classes="buttons"):
                yield Button("Test Account Settings", id="test", variant="primary")
                yield Button("Save", id="save", disabled=True)
                yield Button("Cancel", id="cancel")
            yield Static("", id="steps")

    def on_mount(self) -> None:
        if self.existing is not None:
            self._fill(self.existing)
        self._show_options()

    def _fill(self, account: Account) -> None:
        from mailbag.config.model import SecretSource

        def put(widget_id: str, value: str) -> None:
            self.query_one(f"#{widget_id}", Input).value = value

        inc, out = account.incoming, account.smtp
        put("email", account.email)
        put("username", "" if inc.username == account.email else inc.username)
        self.query_one("#protocol", Select).value = account.protocol.value
        for prefix, server in (("in", inc), ("out", out)):
            put(f"{prefix}-host", server.host)
            put(f"{prefix}-port", str(server.port))
            self.query_one(f"#{prefix}-sec", Select).value = server.security.value
        self.query_one("#smtp-auth", Checkbox).value = out.requires_auth
        same = out.username == inc.username and (
            out.secret == inc.secret or out.secret.source is SecretSource.NONE
        )
        self.query_one("#smtp-same", Checkbox).value = same
        if not same:
            put("smtp-user", out.username)
        put("ca-file", str(account.ca_file) if account.ca_file else "")

    @on(Checkbox.Changed, "#smtp-auth, #smtp-same")
    @on(Select.Changed, "#in-sec, #out-sec")
    def _show_options(self) -> None:
        auth = self.query_one("#smtp-auth", Checkbox).value
        self.query_one("#smtp-same", Checkbox).display = auth
        separate = auth and not self.query_one("#smtp-same", Checkbox).value
        self.query_one("#smtp-login").display = separate
        insecure = "none" in (
            self.query_one("#in-sec", Select).value,
            self.query_one("#out-sec", Select).value,
        )
        self.query_one("#insecure-warning").display = insecure
        self.query_one("#insecure-ok").display = insecure

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    def _value(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value.strip()

    def _password(self, widget_id: str) -> str:
        # passwords may carry meaningful spaces at either end
        return self.query_one(f"#{widget_id}", Input).value

    @on(Button.Pressed, "#discover")
    def _discover(self) -> None:
        email = self._value("email")
        if "@" not in email:
            self.query_one("#found", Static).update("[red]enter your email address first[/]")
            return
        self.query_one("#found", Static).update(f"looking up the settings for {email} ...")
        self._run_discovery(email)

    @work(thread=True, exclusive=True, group="discover")
    def _run_discovery(self, email: str) -> None:
        from mailbag.autoconfig import discover
        from mailbag.errors import MailbagError

        try:
            found = discover(email)
        except MailbagError as exc:
            self.app.call_from_thread(self._show_found, None, exc.message)
            return
        self.app.call_from_thread(self._show_found, found, None)

    def _show_found(self, found: Any, error: str | None) -> None:
        out = self.query_one("#found", Static)
        if found is None or found.incoming is None:
            problems = error or "; ".join(found.problems if found else []) or "nothing found"
            out.update(f"[yellow]{clean_terminal(problems)}[/]: enter the servers by hand below")
            return
        lines = []
        for cand, prefix in ((found.incoming, "in"), (found.smtp, "out")):
            if cand is None:
                continue
            self.query_one(f"#{prefix}-host", Input).value = cand.host
            self.query_one(f"#{prefix}-port", Input).value = str(cand.port)
            self.query_one(f"#{prefix}-sec", Select).value = cand.security.value
            if prefix == "in":
                self.query_one("#protocol", Select).value = cand.protocol
            lines.append(
                f"{cand.protocol:<5} {cand.host}:{cand.port} {cand.security.value} "
                f"(from {cand.source.value})"
            )
            lines += [f"  note: {n}" for n in cand.notes]
        out.update(clean_terminal("\n".join(lines), keep_newlines=True))

    def _refs(self, name: str) -> tuple[SecretRef, SecretRef]:
        """Where the incoming and SMTP secrets live: the keyring keys `mailbag account add`
        uses (an edited account keeps a password command it had)."""
        from mailbag.config.model import SecretRef, SecretSource
        from mailbag.config.schema import keyring_key

        old = self.existing
        incoming = SecretRef(SecretSource.KEYRING, keyring_key(name, "incoming"))
        if old is not None and old.incoming.secret.source is SecretSource.COMMAND:
            incoming = old.incoming.secret
        if not self.query_one("#smtp-auth", Checkbox).value:
            return incoming, SecretRef(SecretSource.NONE, "")
        if self.query_one("#smtp-same", Checkbox).value:
            return incoming, incoming
        smtp = SecretRef(SecretSource.KEYRING, keyring_key(name, "smtp"))
        if (
            old is not None
            and old.smtp.secret.source is SecretSource.COMMAND
            and old.smtp.secret != old.incoming.secret
        ):
            smtp = old.smtp.secret
        return incoming, smtp

    def _account(self) -> Account:
        import dataclasses
        from pathlib import Path

        from mailbag.config.model import Account, Protocol, Server, SmtpServer
        from mailbag.errors import ConfigError
        from mailbag.protocols.transport import Security

        email = self._value("email")
        if "@" not in email:
            raise ConfigError("enter your email address")
        name = self.existing.name if self.existing else email
        username = self._value("username") or email
        try:
            in_port = int(self._value("in-port") or 0)
            out_port = int(self._value("out-port") or 0)
        except ValueError as exc:
            raise ConfigError("ports must be numbers") from exc
        in_sec = Security(str(self.query_one("#in-sec", Select).value))
        out_sec = Security(str(self.query_one("#out-sec", Select).value))
        if (
            Security.NONE in (in_sec, out_sec)
            and not self.query_one("#insecure-ok", Checkbox).value
        ):
            raise ConfigError(
                "unencrypted connections are refused unless you confirm them",
                hint="tick “I understand” below, or choose SSL/TLS or STARTTLS",
            )
        requires_auth = self.query_one("#smtp-auth", Checkbox).value
        same = self.query_one("#smtp-same", Checkbox).value
        smtp_user = username
        if requires_auth and not same:
            smtp_user = self._value("smtp-user")
            if not smtp_user:
                raise ConfigError("enter the SMTP user name (or tick “same ... as incoming”)")
        iref, sref = self._refs(name)
        ca = self._value("ca-file")
        old = self.existing
        incoming = Server(self._value("in-host"), in_port, in_sec, username, secret=iref)
        smtp = SmtpServer(
            self._value("out-host"),
            out_port,
            out_sec,
            smtp_user,
            secret=sref,
            requires_auth=requires_auth,
        )
        if old is None:
            return Account(
                name=name,
                email=email,
                protocol=Protocol(str(self.query_one("#protocol", Select).value)),
                incoming=incoming,
                smtp=smtp,
                ca_file=Path(ca) if ca else None,
            )
        # an edit keeps everything the form does not show (identities, sync options, ...)
        return dataclasses.replace(
            old,
            email=email,
            protocol=Protocol(str(self.query_one("#protocol", Select).value)),
            incoming=dataclasses.replace(incoming, auth=old.incoming.auth),
            smtp=dataclasses.replace(smtp, auth=old.smtp.auth),
            ca_file=Path(ca) if ca else None,
        )

    def _secrets(self, account: Account) -> dict[str, str]:
        """The passwords to test with; on an edit, a blank field means the stored one."""
        from mailbag.config.model import SecretSource
        from mailbag.config.secrets import get_secret

        secrets: dict[str, str] = {}
        typed = {"incoming": self._password("password"), "smtp": self._password("smtp-password")}
        for which, server in (("incoming", account.incoming), ("smtp", account.smtp)):
            if which == "smtp" and server.secret == account.incoming.secret:
                continue
            if server.secret.source is SecretSource.NONE:
                continue
            stored = server.secret.source is SecretSource.COMMAND or self.existing is not None
            if stored and not typed[which]:
                secrets[which] = get_secret(account, which)  # type: ignore[arg-type]
            else:
                secrets[which] = typed[which]
        return secrets

    @on(Button.Pressed, "#test")
    def _test(self) -> None:
        from mailbag.errors import MailbagError

        steps = self.query_one("#steps", Static)
        try:
            account = self._account()
            secrets = self._secrets(account)
        except MailbagError as exc:
            message = exc.message + (f" ({exc.hint})" if exc.hint else "")
            steps.update(f"[red]{clean_terminal(message)}[/]")
            return
        self.query_one("#save", Button).disabled = True
        self._lines: list[str] = []
        steps.update("testing ...")
        self._run_test(account, secrets)

    @work(thread=True, exclusive=True, group="test")
    def _run_test(self, account: Account, secrets: dict[str, str]) -> None:
        def step(result: StepResult) -> None:
            self.app.call_from_thread(self._show_step, result)

        report = self.view.test_account(account, secrets, step)
        self.app.call_from_thread(self._tested, account, report.ok)

    def _show_step(self, result: StepResult) -> None:
        line = f"{MARK.get(result.status.value, '?')} {result.name:<18} {result.ms:>5.0f} ms  "
        line += clean_terminal(result.detail)
        if result.hint and result.status.value == "failed":
            line += f"\n    [yellow]fix:[/] {clean_terminal(result.hint)}"
        self._lines.append(line)
        self.query_one("#steps", Static).update("\n".join(self._lines))

    def _tested(self, account: Account, ok: bool) -> None:
        self.tested = account if ok else None
        self.query_one("#save", Button).disabled = not ok
        verdict = "[green]all steps passed[/]" if ok else "[red]the test failed: see above[/]"
        self._lines.append(verdict)
        self.query_one("#steps", Static).update("\n".join(self._lines))

    @on(Button.Pressed, "#save")
    def _save(self) -> None:
        from mailbag.config import load_config, save_account
        from mailbag.config.model import SecretSource
        from mailbag.config.secrets import store_secret
        from mailbag.errors import MailbagError

        account = self.tested
        if account is None:
            return
        try:
            if self._account() != account:
                raise MailbagError("the settings changed after the test: test them again")
            typed = {
                account.incoming.secret: self._password("password"),
                account.smtp.secret: self._password("smtp-password"),
            }
            if account.smtp.secret == account.incoming.secret:
                typed[account.incoming.secret] = self._password("password")
            for ref, secret in typed.items():
                if ref.source is SecretSource.KEYRING and secret:
                    store_secret(ref, secret)
            first = not load_config(self.view.paths).accounts
            save_account(self.view.paths, account, make_default=first)
        except MailbagError as exc:
            message = clean_terminal(exc.message + (f" ({exc.hint})" if exc.hint else ""))
            self.query_one("#steps", Static).update(f"[red]{message}[/]")
            self.query_one("#save", Button).disabled = True
            return
        self.dismiss(account.name)
