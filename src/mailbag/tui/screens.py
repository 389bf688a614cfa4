"""Dialogs of the interactive client: help, folder picker, search, and the
account dialog with its live "Test Account Settings"."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Select, Static

from mailbag.textsafe import clean_terminal

if TYPE_CHECKING:
    from mailbag.config.model import Account
    from mailbag.diagnose import StepResult
    from mailbag.tui.view import AttachmentRow, MailView

KEYS = [
    ("↑ ↓  j k", "move in the list (PgUp PgDn Home End too)"),
    ("Enter", "open the message"),
    ("Tab", "next pane"),
    ("t", "conversations on/off (threads, newest first)"),
    ("→ ← Space", "unfold / fold / toggle a conversation"),
    ("v", "attachments: Enter/o open, w save to a folder"),
    ("/", "search (same language as `mailbag search`)"),
    ("Esc", "back to the folder after a search"),
    ("c", "compose a new message"),
    ("r / a", "reply / reply to all"),
    ("f", "forward (with its attachments)"),
    ("e", "edit a draft (in Drafts) and send or save it again"),
    ("o", "outbox: what waits to be sent (r send again, d drop)"),
    ("s", "flag / unflag"),
    ("u", "mark read / unread"),
    ("m", "move to a folder (a folded conversation: all of it)"),
    ("d", "delete to Trash (a folded conversation: all of it)"),
    ("g", "get mail: sync every account now"),
    ("A", "add an account (with the account test)"),
    ("Ctrl+P", "command palette"),
    ("?", "this help"),
    ("q", "quit"),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [("escape,q,question_mark", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        lines = "\n".join(f"  {k:<10} {what}" for k, what in KEYS)
        with Vertical(id="dialog"):
            yield Label("mailbag: keys", classes="title")
            yield Static(lines, id="help-keys")
            yield Label("Changes apply here at once and reach the server on the next sync.")
            yield Button("Close", id="close")

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(None)


class FolderPicker(ModalScreen[str | None]):
    """Choose a folder (for `m`ove)."""

    BINDINGS: ClassVar[list[BindingType]] = [("escape", "cancel", "cancel")]

    def __init__(self, folders: list[str]) -> None:
        super().__init__()
        self.folders = folders

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Move to which folder?", classes="title")
            yield OptionList(*[clean_terminal(f) for f in self.folders], id="folders")

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.folders[event.option_index])

    def action_cancel(self) -> None:
        self.dismiss(None)


class AttachmentsScreen(ModalScreen[None]):
    """A message's attachments: open one with the system's handler, or save it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "close"),
        Binding("o", "open", "open"),
        Binding("w", "save", "save to folder"),
    ]
    last_folder: ClassVar[str] = ""

    def __init__(self, view: MailView, message_id: str, attachments: list[AttachmentRow]) -> None:
        super().__init__()
        self.view = view
        self.message_id = message_id
        self.attachments = attachments

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Attachments", classes="title")
            yield OptionList(*[a.label for a in self.attachments], id="attachments")
            yield Label(
                "Enter or o: open with the system's viewer   w: save to a folder   Esc: close"
            )
            yield Label("Save into which folder? (Enter saves, Esc cancels)", id="save-label")
            yield Input(placeholder="a folder, e.g. ~/Downloads", id="save-to")
            yield Static("", id="attachment-result")

    def on_mount(self) -> None:
        self._prompt(False)
        self.query_one("#attachments", OptionList).highlighted = 0

    def _prompt(self, shown: bool) -> Input:
        box = self.query_one("#save-to", Input)
        box.display = shown
        self.query_one("#save-label", Label).display = shown
        return box

    def _chosen(self) -> AttachmentRow | None:
        index = self.query_one("#attachments", OptionList).highlighted
        return None if index is None else self.attachments[index]

    def _say(self, text: str, *, error: bool = False) -> None:
        text = escape(clean_terminal(text))
        self.query_one("#attachment-result", Static).update(f"[red]{text}[/]" if error else text)

    @on(OptionList.OptionSelected, "#attachments")
    def _selected(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        from mailbag.errors import MailbagError

        chosen = self._chosen()
        if chosen is None:
            return
        try:
            path = self.view.open_attachment(self.message_id, chosen.index)
        except MailbagError as exc:
            self._say(exc.message + (f" ({exc.hint})" if exc.hint else ""), error=True)
            return
        self._say(f"opened {path.name} (a private copy: {path})")

    def action_save(self) -> None:
        box = self._prompt(True)
        if not box.value:
            box.value = AttachmentsScreen.last_folder or _default_folder()
        self.set_focus(box)  # at once: an Enter typed right after `w` belongs to the prompt

    @on(Input.Submitted, "#save-to")
    def _save(self, event: Input.Submitted) -> None:
        from mailbag.errors import MailbagError

        chosen = self._chosen()
        folder = event.value.strip()
        if chosen is None or not folder:
            return
        try:
            path = self.view.save_attachment(self.message_id, chosen.index, folder)
        except MailbagError as exc:
            self._say(exc.message + (f" ({exc.hint})" if exc.hint else ""), error=True)
            return
        AttachmentsScreen.last_folder = folder
        wanted = chosen.name.rsplit("/", 1)[-1]
        note = (
            ""
            if path.name == wanted
            else " (that name was taken or unsafe, nothing was overwritten)"
        )
        self._say(f"saved {path}{note}")
        self._prompt(False)
        self.set_focus(self.query_one("#attachments", OptionList))

    def action_close(self) -> None:
        box = self.query_one("#save-to", Input)
        if box.display and box.has_focus:
            self._prompt(False)
            self.set_focus(self.query_one("#attachments", OptionList))
            return
        self.dismiss(None)


def _default_folder() -> str:
    from pathlib import Path

    downloads = Path.home() / "Downloads"
    return str(downloads if downloads.is_dir() else Path.home())


class SearchPrompt(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [("escape", "cancel", "cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Search", classes="title")
            yield Input(placeholder='e.g. from:alice "quarterly report" is:unread', id="query")
            yield Label(
                'words, "phrases", from: to: subject: folder: is:unread has:attachment '
                "before: after: larger: AND OR NOT ( )"
            )

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


SECURITY = [("SSL/TLS", "ssl"), ("STARTTLS", "starttls"), ("None (insecure)", "none")]
MARK = {"ok": "[green]✓[/]", "failed": "[red]✗[/]", "skipped": "[dim]-[/]"}


class AccountDialog(ModalScreen[str | None]):
    """Address -> discovery -> IMAP or POP -> password -> Test Account Settings -> Save."""

    BINDINGS: ClassVar[list[BindingType]] = [("escape", "cancel", "cancel")]

    def __init__(self, view: MailView) -> None:
        super().__init__()
        self.view = view
        self.tested: Account | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="account-dialog"):
            yield Label("Add an account", classes="title")
            yield Input(placeholder="you@example.com", id="email")
            yield Input(placeholder="password or app password", password=True, id="password")
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
                yield Label("CA file", classes="rowlabel")
                yield Input(placeholder="only for a private server's own CA", id="ca-file")
            with Horizontal(classes="buttons"):
                yield Button("Test Account Settings", id="test", variant="primary")
                yield Button("Save", id="save", disabled=True)
                yield Button("Cancel", id="cancel")
            yield Static("", id="steps")

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    def _value(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value.strip()

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

    def _account(self) -> Account:
        from pathlib import Path

        from mailbag.config.model import (
            Account,
            Protocol,
            SecretRef,
            SecretSource,
            Server,
            SmtpServer,
        )
        from mailbag.config.schema import keyring_key
        from mailbag.errors import ConfigError
        from mailbag.protocols.transport import Security

        email = self._value("email")
        name = email
        try:
            in_port = int(self._value("in-port") or 0)
            out_port = int(self._value("out-port") or 0)
        except ValueError as exc:
            raise ConfigError("ports must be numbers") from exc
        in_sec = Security(str(self.query_one("#in-sec", Select).value))
        out_sec = Security(str(self.query_one("#out-sec", Select).value))
        if Security.NONE in (in_sec, out_sec):
            raise ConfigError(
                "unencrypted connections are refused here",
                hint="use `mailbag account add --insecure` if you really must",
            )
        ca = self._value("ca-file")
        secret = SecretRef(SecretSource.KEYRING, keyring_key(name, "incoming"))
        return Account(
            name=name,
            email=email,
            protocol=Protocol(str(self.query_one("#protocol", Select).value)),
            incoming=Server(self._value("in-host"), in_port, in_sec, email, secret=secret),
            smtp=SmtpServer(self._value("out-host"), out_port, out_sec, email, secret=secret),
            ca_file=Path(ca) if ca else None,
        )

    @on(Button.Pressed, "#test")
    def _test(self) -> None:
        from mailbag.errors import MailbagError

        steps = self.query_one("#steps", Static)
        try:
            account = self._account()
        except MailbagError as exc:
            steps.update(f"[red]{clean_terminal(exc.message)}[/]")
            return
        self.query_one("#save", Button).disabled = True
        self._lines: list[str] = []
        steps.update("testing ...")
        self._run_test(account, self._value("password"))

    @work(thread=True, exclusive=True, group="test")
    def _run_test(self, account: Account, password: str) -> None:
        def step(result: StepResult) -> None:
            self.app.call_from_thread(self._show_step, result)

        report = self.view.test_account(account, {"incoming": password}, step)
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
        from mailbag.config.secrets import store_secret
        from mailbag.errors import MailbagError

        if self.tested is None:
            return
        try:
            store_secret(self.tested.incoming.secret, self._value("password"))
            first = not load_config(self.view.paths).accounts
            save_account(self.view.paths, self.tested, make_default=first)
        except MailbagError as exc:
            message = clean_terminal(exc.message + (f" ({exc.hint})" if exc.hint else ""))
            self.query_one("#steps", Static).update(f"[red]{message}[/]")
            return
        self.dismiss(self.tested.name)
