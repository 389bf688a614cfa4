"""The account dialog: the manual settings form with a live "Test Account Settings",
for a new account (A) or an existing one (E).

Accounts whose provider signs in with OAuth2 (Microsoft, Google, or a sign-in
published in the provider's autoconfig) get "Sign in with <provider>"
(`mailbag.tui.sign_in`); the new sign-in stays in memory for the test and is
stored only by Save, through the same `mailbag.auth.setup.keep_sign_in` as
`mailbag account add`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from mailbag.textsafe import clean_terminal, plain_markup
from mailbag.tui.sign_in import SignInPanel

if TYPE_CHECKING:
    from mailbag.auth.flows import TokenSet
    from mailbag.auth.setup import ClientChoice
    from mailbag.auth.tokens import PendingSignIn
    from mailbag.autoconfig.model import OAuth2Info
    from mailbag.config.model import Account, SecretRef
    from mailbag.diagnose import StepResult
    from mailbag.errors import MailbagError
    from mailbag.tui.view import MailView

SECURITY = [("SSL/TLS", "ssl"), ("STARTTLS", "starttls"), ("None (insecure)", "none")]
MARK = {"ok": "[green]✓[/]", "failed": "[red]✗[/]", "skipped": "[dim]-[/]"}
INSECURE = (
    "[red]No encryption: your mail and your password are readable by anyone on the network path.[/]"
)
TYPED = "password"  # a password or app password typed here
OAUTH2 = "oauth2"


class AccountDialog(ModalScreen[str | None]):
    """Address -> discovery -> IMAP or POP -> logins -> Test Account Settings -> Save.

    With `existing`, the form starts filled in from that account; a blank password
    keeps the stored one, and Save replaces the account under the same name."""

    BINDINGS: ClassVar[list[BindingType]] = [("escape", "cancel", "cancel")]
    DEFAULT_CSS = """
    AccountDialog #auth-box { height: auto; }
    AccountDialog #auth-why { color: $text-muted; }
    """

    def __init__(self, view: MailView, existing: Account | None = None) -> None:
        super().__init__()
        self.view = view
        self.existing = existing
        self.tested: Account | None = None
        #: the provider to sign in with ("" = no OAuth2 sign-in known for these servers)
        self.provider = ""
        #: the `<oAuth2>` block discovery found
        self.oauth_info: OAuth2Info | None = None
        self.sign_in = SignInPanel(self, view.paths)

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
            with Vertical(id="auth-box"):
                with Horizontal(classes="row"):
                    yield Label("Sign-in", classes="rowlabel")
                    yield Select(
                        [("Password or app password", TYPED)],
                        value=TYPED,
                        id="auth",
                        allow_blank=False,
                    )
                yield Static("", id="auth-why")
                yield self.sign_in
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
        self.query_one("#auth").styles.width = "1fr"  # the app's `.row Select` is narrower
        if self.existing is not None:
            self._fill(self.existing)
        self._offer_sign_in()
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
        if account.incoming.auth.value == OAUTH2:
            from mailbag.auth.tokens import account_settings, is_signed_in

            self.provider = account_settings(account).provider
            signed_in = is_signed_in(account)
            state = (
                f"[green]signed in[/] as {plain_markup(inc.username)} with {self._title()}"
                if signed_in
                else f"[yellow]not signed in[/]: no sign-in of {plain_markup(inc.username)} "
                "is stored; sign in again"
            )
            self.sign_in.show_state(state)

    @on(Checkbox.Changed, "#smtp-auth, #smtp-same")
    @on(Select.Changed, "#in-sec, #out-sec, #auth")
    def _show_options(self) -> None:
        oauth = self._oauth()
        self.query_one("#password").display = not oauth
        self.sign_in.display = oauth
        auth = self.query_one("#smtp-auth", Checkbox).value
        self.query_one("#smtp-same", Checkbox).display = auth and not oauth
        separate = auth and not oauth and not self.query_one("#smtp-same", Checkbox).value
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

    def _oauth(self) -> bool:
        return self.query_one("#auth", Select).value == OAUTH2

    def _title(self) -> str:
        """Whom the user signs in with, for buttons and messages."""
        from mailbag.auth.setup import PROVIDER_TITLES

        if self.provider in PROVIDER_TITLES:
            return PROVIDER_TITLES[self.provider]
        old = self.existing.oauth2 if self.existing is not None else None
        issuer = (self.oauth_info.issuer if self.oauth_info else "") or (old.issuer if old else "")
        if issuer:
            from urllib.parse import urlsplit

            return clean_terminal(urlsplit(issuer).hostname or issuer if "//" in issuer else issuer)
        return clean_terminal(self._value("email").rpartition("@")[2] or "your provider")

    def _offer_sign_in(self, refuses_password: bool = False) -> None:
        """Offer "Sign in with <provider>" when the servers take OAuth2; preselect it
        when they refuse plain passwords."""
        old = self.existing
        was_oauth = old is not None and old.incoming.auth.value == OAUTH2
        if not was_oauth:
            from mailbag.auth.setup import offers_oauth2

            self.provider = offers_oauth2(
                self._value("email"), self._value("in-host"), self.oauth_info
            )
        box = self.query_one("#auth-box")
        select = self.query_one("#auth", Select)
        if not self.provider and not was_oauth:
            select.value = TYPED
            box.display = False
            return
        title = self._title()
        select.set_options([("Password or app password", TYPED), (f"Sign in with {title}", OAUTH2)])
        box.display = True
        why = self.query_one("#auth-why", Static)
        if refuses_password:
            select.value = OAUTH2
            why.update(
                f"{plain_markup(self._value('in-host'))} refuses plain passwords: sign in "
                f"with {title} (you type your password at {title}, never here)"
            )
        elif was_oauth:
            select.value = OAUTH2
            why.update(f"this account signs in with {title}; choose a password to switch")
        else:
            why.update(
                f"{title} offers sign-in in the browser (needed unless you have an app password)"
            )
        self._show_device_button()
        self.sign_in.set_label("Sign in again" if was_oauth else f"Sign in with {title}")
        self._client_placeholder()
        kept = old.oauth2.tenant if old is not None and old.oauth2 is not None else ""
        self.sign_in.show_provider_options(self.provider, title, tenant=kept)
        self._show_options()

    @on(Input.Changed, "#in-host")
    def _host_changed(self) -> None:
        """Servers typed by hand: offer the sign-in of a provider recognised by its host."""
        from mailbag.auth.setup import offers_oauth2

        if self.existing is not None and self.existing.incoming.auth.value == OAUTH2:
            return
        provider = offers_oauth2(self._value("email"), self._value("in-host"), self.oauth_info)
        if provider != self.provider:
            self._offer_sign_in()

    def _show_device_button(self) -> None:
        from mailbag.auth.setup import offers_device_code
        from mailbag.errors import MailbagError

        try:
            account = self._account()
        except MailbagError:
            possible = False
        else:
            possible = offers_device_code(account, self.view.paths)
        self.sign_in.offer_device_code(possible)

    def _client_placeholder(self) -> None:
        from mailbag.config import load_config
        from mailbag.errors import MailbagError

        shared = ""
        try:
            entry = load_config(self.view.paths).oauth2.get(self.provider or "generic")
            shared = entry.client_id if entry is not None else ""
        except MailbagError:
            pass  # the config file is checked again when saving
        own = self.existing.oauth2.client_id if self.existing and self.existing.oauth2 else ""
        hint = (
            f"client ID (blank: keep {own})"
            if own
            else "client ID (blank: the one in config.toml)"
            if shared
            else "client ID you registered (README: Signing in with OAuth2)"
        )
        self.sign_in.client_placeholder(hint)

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
        from mailbag.autoconfig import DiscoveryOptions, discover
        from mailbag.config import load_config
        from mailbag.errors import MailbagError

        try:
            settings = load_config(self.view.paths).discovery  # [discovery] in config.toml
            options = DiscoveryOptions(settings=settings, probe_ca_file=settings.ca_file)
            found = discover(email, options)
        except MailbagError as exc:
            self.app.call_from_thread(self._show_found, None, exc.message)
            return
        self.app.call_from_thread(self._show_found, found, None)

    def _show_found(self, found: Any, error: str | None) -> None:
        out = self.query_one("#found", Static)
        if found is None or found.incoming is None:
            problems = error or "; ".join(found.problems if found else []) or "nothing found"
            out.update(f"[yellow]{plain_markup(problems)}[/]: enter the servers by hand below")
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
        out.update(plain_markup("\n".join(lines), keep_newlines=True))
        self.oauth_info = found.oauth2
        self._offer_sign_in(refuses_password="password" not in found.incoming.auth)

    def _refs(self, name: str) -> tuple[SecretRef, SecretRef]:
        """Where the incoming and SMTP secrets live: the keyring keys `mailbag account add`
        uses (an edited account keeps a password command it had). With OAuth2 the
        incoming entry holds the refresh token, and SMTP uses the same sign-in."""
        from mailbag.config.model import SecretRef, SecretSource
        from mailbag.config.schema import keyring_key

        old = self.existing
        oauth = self._oauth()
        incoming = SecretRef(SecretSource.KEYRING, keyring_key(name, "incoming"))
        if not oauth and old is not None and old.incoming.secret.source is SecretSource.COMMAND:
            incoming = old.incoming.secret
        if not self.query_one("#smtp-auth", Checkbox).value:
            return incoming, SecretRef(SecretSource.NONE, "")
        if oauth or self.query_one("#smtp-same", Checkbox).value:
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
        return self._account_and_choice()[0]

    def _account_and_choice(self) -> tuple[Account, ClientChoice]:
        """The account the form describes, and (with OAuth2) the client it signs in with."""
        from pathlib import Path

        from mailbag.auth.setup import ClientChoice
        from mailbag.config.model import Account, AuthMethod, Protocol, Server, SmtpServer
        from mailbag.errors import ConfigError
        from mailbag.protocols.transport import Security
        from mailbag.record import replace

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
        oauth = self._oauth()
        auth = AuthMethod.OAUTH2 if oauth else AuthMethod.PASSWORD
        requires_auth = self.query_one("#smtp-auth", Checkbox).value
        same = oauth or self.query_one("#smtp-same", Checkbox).value
        smtp_user = username
        if requires_auth and not same:
            smtp_user = self._value("smtp-user")
            if not smtp_user:
                raise ConfigError("enter the SMTP user name (or tick “same ... as incoming”)")
        iref, sref = self._refs(name)
        ca = self._value("ca-file")
        old = self.existing
        incoming = Server(self._value("in-host"), in_port, in_sec, username, auth, iref)
        smtp = SmtpServer(
            self._value("out-host"),
            out_port,
            out_sec,
            smtp_user,
            auth,
            sref,
            requires_auth=requires_auth,
        )
        protocol = Protocol(str(self.query_one("#protocol", Select).value))
        if old is None:
            account = Account(
                name=name,
                email=email,
                protocol=protocol,
                incoming=incoming,
                smtp=smtp,
                ca_file=Path(ca) if ca else None,
            )
        else:
            # an edit keeps everything the form does not show (identities, sync options, ...)
            account = replace(
                old,
                email=email,
                protocol=protocol,
                incoming=incoming,
                smtp=smtp,
                ca_file=Path(ca) if ca else None,
                oauth2=old.oauth2 if oauth else None,
            )
        if not oauth:
            return account, ClientChoice()
        return self._with_sign_in_settings(account)

    def _with_sign_in_settings(self, account: Account) -> tuple[Account, ClientChoice]:
        """OAuth2 settings as `mailbag account add` makes them: published endpoints,
        then the client typed here (blank: the account's or config.toml's)."""
        from mailbag.auth.setup import ClientChoice, with_client, with_published

        if account.oauth2 is None:
            account, _ = with_published(account, self.oauth_info)
        client_id, client_secret = self.sign_in.client()
        choice = ClientChoice(
            provider=self.provider if self.provider and account.oauth2 is None else "",
            tenant=self.sign_in.tenant(),
            client_id=client_id,
            client_secret=client_secret,
            shared=self.sign_in.shared(),
        )
        account, choice, _ = with_client(account, choice)
        return account, choice

    def _secrets(self, account: Account) -> dict[str, str]:
        """The passwords to test with; on an edit, a blank field means the stored one."""
        from mailbag.config.model import AuthMethod, SecretSource
        from mailbag.config.secrets import get_secret

        secrets: dict[str, str] = {}
        if account.incoming.auth is AuthMethod.OAUTH2:
            return secrets  # the sign-in (new, or the stored one) logs in
        old = self.existing
        had_password = old is not None and old.incoming.auth is AuthMethod.PASSWORD
        typed = {"incoming": self._password("password"), "smtp": self._password("smtp-password")}
        for which, server in (("incoming", account.incoming), ("smtp", account.smtp)):
            if which == "smtp" and server.secret == account.incoming.secret:
                continue
            if server.secret.source is SecretSource.NONE:
                continue
            stored = server.secret.source is SecretSource.COMMAND or had_password
            if stored and not typed[which]:
                secrets[which] = get_secret(account, which)  # type: ignore[arg-type]
            else:
                secrets[which] = typed[which]
        return secrets

    # --- OAuth2 sign-in ------------------------------------------------------------------

    def _sign_in_problem(self, account: Account) -> str:
        """Why the test cannot use a sign-in for `account` yet ("" when it can)."""
        if self.sign_in.pending is not None:
            if self.sign_in.usable_for(account):
                return ""
            return "the sign-in was made for other settings (address, user name or client)"
        old = self.existing
        if (
            old is not None
            and old.incoming.auth.value == OAUTH2
            and old.oauth2 == account.oauth2
            and old.incoming.username == account.incoming.username
        ):
            return ""  # the stored sign-in
        return f"sign in with {self._title()} first"

    # what the sign-in panel asks of the dialog (`mailbag.tui.sign_in.SignInForm`)

    def sign_in_settings(self) -> tuple[Account, ClientChoice]:
        return self._account_and_choice()

    def sign_in_title(self) -> str:
        return self._title()

    def sign_in_help(self, then: str) -> str:
        from mailbag.auth.providers import registration_help

        issuer = self.oauth_info.issuer if self.oauth_info else ""
        return registration_help(self.provider or "generic", "", issuer, then=then)

    @on(SignInPanel.Busy)
    def _signing_in(self, event: SignInPanel.Busy) -> None:
        # no test while a sign-in runs; a new sign-in needs a new test
        self.query_one("#test", Button).disabled = event.busy
        if event.busy:
            self.query_one("#save", Button).disabled = True
            self.tested = None

    # --- test and save -------------------------------------------------------------------

    @on(Button.Pressed, "#test")
    def _test(self) -> None:
        from mailbag.errors import MailbagError

        steps = self.query_one("#steps", Static)
        try:
            account = self._account()
            secrets = self._secrets(account)
        except MailbagError as exc:
            message = exc.message + (f" ({exc.hint})" if exc.hint else "")
            steps.update(f"[red]{plain_markup(message)}[/]")
            return
        pending = None
        if self._oauth():
            problem = self._sign_in_problem(account)
            if problem:
                steps.update(f"[red]{plain_markup(problem)}[/]")
                return
            pending = self.sign_in.pending
        self.query_one("#save", Button).disabled = True
        self._lines: list[str] = []
        steps.update("testing ...")
        self._run_test(account, secrets, pending)

    @work(thread=True, exclusive=True, group="test")
    def _run_test(
        self, account: Account, secrets: dict[str, str], pending: PendingSignIn | None
    ) -> None:
        import contextlib

        from mailbag.auth.tokens import using_pending

        def step(result: StepResult) -> None:
            self.app.call_from_thread(self._show_step, result)

        # a new sign-in logs in from memory: nothing is stored before Save
        with using_pending(account, pending) if pending else contextlib.nullcontext():
            report = self.view.test_account(account, secrets, step)
        self.app.call_from_thread(self._tested, account, report.ok)

    def _show_step(self, result: StepResult) -> None:
        line = f"{MARK.get(result.status.value, '?')} {result.name:<18} {result.ms:>5.0f} ms  "
        line += plain_markup(result.detail)
        if result.hint and result.status.value == "failed":
            line += f"\n    [yellow]fix:[/] {plain_markup(result.hint)}"
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
        from mailbag.errors import MailbagError

        account = self.tested
        if account is None:
            return
        try:
            current, choice = self._account_and_choice()
            if current != account:
                raise MailbagError("the settings changed after the test: test them again")
        except MailbagError as exc:
            self._save_failed(exc)
            return
        typed = {
            account.incoming.secret: self._password("password"),
            account.smtp.secret: self._password("smtp-password"),
        }
        if account.smtp.secret == account.incoming.secret:
            typed[account.incoming.secret] = self._password("password")
        self.query_one("#save", Button).disabled = True
        self.query_one("#steps", Static).update("saving ...")
        self._run_save(account, choice, typed, self.sign_in.pending if self._oauth() else None)

    @work(thread=True, exclusive=True, group="save")
    def _run_save(
        self,
        account: Account,
        choice: ClientChoice,
        typed: dict[SecretRef, str],
        pending: PendingSignIn | None,
    ) -> None:
        from mailbag.errors import MailbagError

        try:
            problem = self._store(account, choice, typed, pending.token if pending else None)
        except MailbagError as exc:
            self.app.call_from_thread(self._save_failed, exc)
            return
        if problem:
            # saved all the same; the notice outlives the dialog
            self.app.call_from_thread(
                self.app.notify, clean_terminal(problem), severity="warning", timeout=30
            )
        self.app.call_from_thread(self.dismiss, account.name)

    def _store(
        self,
        account: Account,
        choice: ClientChoice,
        typed: dict[SecretRef, str],
        token: TokenSet | None,
    ) -> str:
        """Keep the secrets and the account (runs in a worker: a sign-out may take a moment).
        Returns what the user must still do by hand ("" when nothing), for example end a
        sign-in the provider would not revoke."""
        from mailbag.auth.setup import keep_sign_in
        from mailbag.auth.tokens import sign_out
        from mailbag.config import load_config, save_account
        from mailbag.config.model import AuthMethod, SecretSource
        from mailbag.config.secrets import delete_secret, store_secret

        paths = self.view.paths
        old = self.existing
        problem = ""
        if (
            old is not None
            and old.incoming.auth is AuthMethod.OAUTH2
            and account.incoming.auth is AuthMethod.PASSWORD
        ):
            # back to a password: end the sign-in at the provider and forget its tokens
            # (before the password takes the refresh token's place in the keyring)
            outcome = sign_out(old, paths=paths)
            if outcome.problem:
                problem = f"the OAuth2 sign-in of {old.name!r} was not revoked: {outcome.problem}"
                problem += f" ({outcome.hint})" if outcome.hint else ""
        if token is not None:
            # the same path as `mailbag account add/login`: client secret, refresh token
            keep_sign_in(paths, account, token, choice)
        else:
            for ref, secret in typed.items():
                if ref.source is SecretSource.KEYRING and secret:
                    store_secret(ref, secret)
        first = not load_config(paths).accounts
        save_account(paths, account, make_default=first)
        if old is not None and old.smtp.secret not in (
            account.smtp.secret,
            old.incoming.secret,
        ):
            delete_secret(old.smtp.secret)  # its own SMTP password is no longer used
        return problem

    def _save_failed(self, exc: MailbagError) -> None:
        message = plain_markup(exc.message + (f" ({exc.hint})" if exc.hint else ""))
        self.query_one("#steps", Static).update(f"[red]{message}[/]")
        self.query_one("#save", Button).disabled = True
