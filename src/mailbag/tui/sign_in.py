"""The OAuth2 sign-in panel of the account dialog: client ID, "Sign in with ...", a
device code, Cancel; the flow runs in a worker, so the UI never waits on it.

The browser opens through `mailbag.opener` (as attachments do; the address is
shown to copy when nothing can open it). A finished sign-in stays in memory
(`PendingSignIn`) for the dialog's test; nothing here stores anything: Save in
the dialog does, through `mailbag.auth.setup.keep_sign_in`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Checkbox, Input, Label, Static

from mailbag.textsafe import clean_terminal, plain_markup

if TYPE_CHECKING:
    from mailbag.auth.flows import DeviceCode, TokenSet
    from mailbag.auth.setup import ClientChoice
    from mailbag.auth.tokens import PendingSignIn
    from mailbag.config.model import Account
    from mailbag.errors import MailbagError
    from mailbag.paths import Paths

#: the dialog's words instead of the CLI's "run mailbag account login ..." hints
FIXES = {
    "cancelled": "press Sign in when you are ready",
    "denied": "press Sign in again and accept the request (it lets mailbag read and send "
    "your mail; your password stays with the provider)",
    "timeout": "press Sign in to try again (or “Use a code instead” to sign in on another device)",
    "state": "press Sign in again",
    "reauth": "press Sign in again",
    "no-keyring": "the sign-in is kept in the system keyring: install one (GNOME Keyring, "
    "KWallet, or another Secret Service) and start mailbag again",
}


class SignInForm(Protocol):
    """What the panel needs from the dialog around it."""

    def sign_in_settings(self) -> tuple[Account, ClientChoice]:
        """The account to sign in for and the client to use (MailbagError if incomplete)."""
        ...

    def sign_in_title(self) -> str:
        """Whom the user signs in with ("Microsoft", "Google", a host name)."""
        ...

    def sign_in_help(self, then: str) -> str:
        """How to register a client ID with the provider, ending with `then`."""
        ...


class SignInPanel(Vertical):
    """Sign in with the account's OAuth2 provider; `pending` holds the result."""

    DEFAULT_CSS = """
    SignInPanel { height: auto; }
    SignInPanel #oauth-state { margin-top: 1; }
    SignInPanel #signin-status { height: auto; margin-top: 1; }
    SignInPanel #device-code {
        width: auto; height: auto; padding: 1 4; margin: 1 0;
        border: heavy $accent; text-style: bold;
    }
    """
    #: seconds the browser sign-in may take
    TIMEOUT = 300.0

    class Busy(Message):
        """A sign-in started (True) or ended (False): the dialog holds its test meanwhile."""

        def __init__(self, busy: bool) -> None:
            super().__init__()
            self.busy = busy

    def __init__(self, form: SignInForm, paths: Paths) -> None:
        super().__init__(id="oauth-box")
        self.form = form
        self.paths = paths
        #: a finished sign-in, in memory until Save, and the account it was made for
        self.pending: PendingSignIn | None = None
        self.signed_in_for: Account | None = None
        #: the address the user opens (browser sign-in, or the device-code page)
        self.url = ""
        self._cancel: threading.Event | None = None

    def compose(self) -> ComposeResult:
        yield Static("not signed in yet", id="oauth-state")
        with Horizontal(classes="row"):
            yield Label("Client", classes="rowlabel")
            yield Input(id="client-id", classes="host")
            yield Input(
                placeholder="client secret (only if issued)",
                password=True,
                id="client-secret",
                classes="host",
            )
        with Horizontal(classes="row", id="tenant-row"):
            yield Label("Tenant", classes="rowlabel")
            yield Input(
                placeholder="blank: common; else organizations, consumers or your tenant",
                id="tenant",
                classes="host",
            )
        yield Checkbox("Use this client ID for every account of this provider", id="client-shared")
        with Horizontal(classes="buttons"):
            yield Button("Sign in", id="signin", variant="primary")
            yield Button("Use a code instead", id="signin-device")
            yield Button("Copy address", id="signin-copy")
            yield Button("Cancel sign-in", id="signin-cancel", variant="error")
        yield Static("", id="signin-status")
        yield Static("", id="device-code")

    def on_mount(self) -> None:
        for widget_id in (
            "signin-copy",
            "signin-cancel",
            "device-code",
            "tenant-row",
            "client-shared",
        ):
            self.query_one(f"#{widget_id}").display = False

    def on_unmount(self) -> None:
        self.cancel()  # a browser sign-in still waiting ends with the dialog

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    def show_state(self, text: str) -> None:
        self.query_one("#oauth-state", Static).update(text)

    def set_label(self, label: str) -> None:
        if self.pending is None:
            self.query_one("#signin", Button).label = label

    def offer_device_code(self, possible: bool) -> None:
        self.query_one("#signin-device").display = possible

    def client(self) -> tuple[str, str]:
        """The client ID and secret typed (blank: the account's or config.toml's)."""
        secret = self.query_one("#client-secret", Input).value  # may hold meaningful spaces
        return self.query_one("#client-id", Input).value.strip(), secret

    def show_provider_options(self, provider: str, title: str, tenant: str = "") -> None:
        """The tenant (Microsoft only: which directory signs in) and the choice to keep
        the client ID for every account of a built-in provider (`--oauth-shared`)."""
        self.query_one("#tenant-row").display = provider == "microsoft"
        field = self.query_one("#tenant", Input)
        if tenant and not field.value:
            field.value = tenant
        shared = self.query_one("#client-shared", Checkbox)
        shared.display = provider in ("microsoft", "google")
        shared.label = f"Use this client ID for every {title} account"
        if not shared.display:
            shared.value = False

    def tenant(self) -> str:
        """The Microsoft tenant typed ("" when hidden or blank: the default)."""
        if not self.query_one("#tenant-row").display:
            return ""
        return self.query_one("#tenant", Input).value.strip()

    def shared(self) -> bool:
        """Whether the typed client ID is kept for the whole provider."""
        box = self.query_one("#client-shared", Checkbox)
        return bool(box.display and box.value)

    def client_placeholder(self, text: str) -> None:
        self.query_one("#client-id", Input).placeholder = clean_terminal(text)

    def usable_for(self, account: Account) -> bool:
        """Whether the new sign-in was made for this account as the form now describes it."""
        made = self.signed_in_for
        return (
            self.pending is not None
            and made is not None
            and (made.name, made.incoming.username, made.oauth2)
            == (account.name, account.incoming.username, account.oauth2)
        )

    # --- the flow ------------------------------------------------------------------------

    @on(Button.Pressed, "#signin, #signin-device")
    def _start(self, event: Button.Pressed) -> None:
        from mailbag.auth.tokens import provider_for
        from mailbag.config.secrets import require_keyring
        from mailbag.errors import MailbagError

        status = self.query_one("#signin-status", Static)
        try:
            account, choice = self.form.sign_in_settings()
            provider_for(account, paths=self.paths, **choice.flow_args())
            require_keyring()  # said now, not after the user signed in for nothing
        except MailbagError as exc:
            status.update(self._explain(exc))
            return
        device = event.button.id == "signin-device"
        self._cancel = threading.Event()
        self._busy(True)
        status.update(
            "asking for a code ..."
            if device
            else f"opening the {self.form.sign_in_title()} sign-in ..."
        )
        self._run(account, choice, device, self._cancel)

    def _busy(self, busy: bool) -> None:
        for widget_id in ("signin", "signin-device"):
            self.query_one(f"#{widget_id}", Button).disabled = busy
        self.query_one("#signin-cancel").display = busy
        if not busy:
            self.query_one("#signin-copy").display = False
            self.query_one("#device-code").display = False
        self.post_message(self.Busy(busy))

    @work(thread=True, exclusive=True, group="signin")
    def _run(
        self, account: Account, choice: ClientChoice, device: bool, cancel: threading.Event
    ) -> None:
        from mailbag.auth.tokens import obtain_tokens
        from mailbag.errors import MailbagError
        from mailbag.opener import open_url

        def show_url(url: str, opened: bool) -> None:
            self.app.call_from_thread(self.show_url, url, opened)

        def show_code(code: DeviceCode) -> None:
            self.app.call_from_thread(self.show_code, code)

        try:
            token = obtain_tokens(
                account,
                device=device,
                paths=self.paths,
                show_url=show_url,
                show_code=show_code,
                open_browser=open_url,
                cancel=cancel,
                timeout=self.TIMEOUT,
                **choice.flow_args(),
            )
        except MailbagError as exc:
            if self.is_attached:  # not when the dialog closed (which cancels the sign-in)
                self.app.call_from_thread(self._failed, exc)
            return
        if self.is_attached:
            self.app.call_from_thread(self._done, account, choice, token)

    def show_url(self, url: str, opened: bool) -> None:
        self.url = url
        self.query_one("#signin-copy").display = True
        where = (
            "a browser window opened: sign in there, then come back"
            if opened
            else "[yellow]no browser could be opened[/]: open this address in a browser "
            "(Copy address puts it on the clipboard)"
        )
        text = f"{where}\n\n{plain_markup(url)}\n\nwaiting for you to finish ..."
        self.query_one("#signin-status", Static).update(text)

    def show_code(self, code: DeviceCode) -> None:
        self.url = code.verification_uri
        self.query_one("#signin-copy").display = True
        self.query_one("#signin-status", Static).update(
            f"on any device, open [b]{plain_markup(code.verification_uri)}[/b] and enter "
            "this code (waiting for you to finish ...):"
        )
        box = self.query_one("#device-code", Static)
        box.update(" ".join(clean_terminal(code.user_code)))
        box.display = True
        box.scroll_visible()

    @on(Button.Pressed, "#signin-copy")
    def _copy(self) -> None:
        self.app.copy_to_clipboard(self.url)
        self.notify("the sign-in address is on the clipboard")

    @on(Button.Pressed, "#signin-cancel")
    def _stop(self) -> None:
        self.cancel()
        self.query_one("#signin-status", Static).update("cancelling ...")

    def _failed(self, exc: MailbagError) -> None:
        self._busy(False)
        self.query_one("#signin-status", Static).update(self._explain(exc))

    def _done(self, account: Account, choice: ClientChoice, token: TokenSet) -> None:
        from mailbag.auth.tokens import PendingSignIn

        self.pending = PendingSignIn(token, choice.client_id or None, choice.client_secret or None)
        self.signed_in_for = account
        self._busy(False)
        self.query_one("#signin", Button).label = "Sign in again"
        who = plain_markup(account.incoming.username)
        self.show_state(
            f"[green]signed in[/] as {who} with {self.form.sign_in_title()} (kept when you save)"
        )
        self.query_one("#signin-status", Static).update(
            "now press Test Account Settings: it logs in with this sign-in"
        )

    def _explain(self, exc: MailbagError) -> str:
        """A sign-in problem as cause and fix, in the dialog's words."""
        from mailbag.errors import NetworkError

        cause = str(exc.fields.get("cause", ""))
        if cause == "no-client-id":
            message = f"mailbag needs a client ID to sign in with {self.form.sign_in_title()}"
            fix = self.form.sign_in_help(
                "then enter it under Client above (and the client secret, if one was "
                "issued); the README's section 'Signing in with OAuth2' has the details"
            )
        elif cause == "client":
            message = exc.message
            fix = (
                "check the client ID (and secret) under Client: it must be the one you "
                "registered, for a desktop/public client that may redirect to "
                "http://localhost (README: 'Signing in with OAuth2')"
            )
        elif cause in FIXES:
            message, fix = exc.message, FIXES[cause]
        elif isinstance(exc, NetworkError):
            message = exc.message
            fix = "check your network connection (and any proxy), then press Sign in again"
        else:
            message, fix = exc.message, exc.hint or ""
        text = f"[red]✗[/] {plain_markup(message)}"
        if fix:
            text += f"\n    [yellow]fix:[/] {plain_markup(fix)}"
        return text
