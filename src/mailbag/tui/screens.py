"""Dialogs of the interactive client: help, folder picker, search, confirmation (the
account dialog is in mailbag.tui.account_dialog)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static

from mailbag.textsafe import clean_terminal, plain_markup

if TYPE_CHECKING:
    from mailbag.tui.view import AttachmentRow, MailView

KEYS = [
    ("↑ ↓  j k", "move in the list (PgUp PgDn Home End too)"),
    ("Enter", "open the message"),
    ("Tab", "next pane"),
    ("t", "conversations on/off for this folder (remembered)"),
    ("→ ← Space", "unfold / fold / toggle a conversation"),
    ("v", "attachments: Enter/o open, w save to a folder"),
    ("/", "search (same language as `mailbag search`)"),
    ("Esc", "back to the folder after a search"),
    ("c", "compose a new message"),
    ("r / a", "reply / reply to all"),
    ("f / F", "forward with its attachments / as an attachment, unchanged"),
    ("e", "edit a draft (in Drafts) and send or save it again"),
    ("o", "outbox: what waits to be sent (r send again, d drop)"),
    ("M", "messages: the status bar's news of this session, whole"),
    ("s", "flag / unflag (a folded conversation: all of it)"),
    ("u", "mark read / unread (a folded conversation: all of it)"),
    ("m", "move to a folder (a folded conversation: all of it, asks first)"),
    ("d", "delete to Trash (a folded conversation: all of it, asks first)"),
    ("g", "get mail: sync every account now"),
    ("A", "add an account (with the account test)"),
    ("E", "edit the account of the folder under the cursor"),
    ("Ctrl+P", "command palette"),
    ("?", "this help"),
    ("q", "quit"),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [("escape,q,question_mark", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        lines = "\n".join(f"  {k:<10} {what}" for k, what in KEYS)
        # scrolls (↑ ↓, PgUp PgDn) when the terminal is too short for it all (80x24)
        with VerticalScroll(id="dialog"):
            yield Label("mailbag: keys", classes="title")
            yield Static(lines, id="help-keys")
            yield Label("Changes apply here at once and reach the server on the next sync.")
            yield Button("Close", id="close")

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(None)


class MessagesScreen(ModalScreen[None]):
    """The status bar's news of this session, newest last, whole: the bar is one line
    and cuts what does not fit (a send refused for several recipients, a sync problem)."""

    BINDINGS: ClassVar[list[BindingType]] = [("escape,q,M", "dismiss", "close")]

    def __init__(self, messages: list[tuple[str, str]]) -> None:
        super().__init__()
        self.entries = messages

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog"):
            yield Label("mailbag: messages", classes="title")
            if not self.entries:
                yield Static("nothing yet", id="no-messages")
            for when, text in self.entries:
                # plain text (no markup); already cleaned of terminal escapes by the status bar
                yield Static(Text(f"{when}  {text}"), classes="message")
            yield Button("Close", id="close")

    def on_mount(self) -> None:
        self.query_one("#dialog", VerticalScroll).scroll_end(animate=False)

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
            # Text, not str: an option's string is markup, and `[Gmail]/Sent` would show as `/Sent`
            yield OptionList(*[Text(clean_terminal(f)) for f in self.folders], id="folders")

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
            yield OptionList(*[Text(a.label) for a in self.attachments], id="attachments")
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
        text = plain_markup(text)
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


class ConfirmPrompt(ModalScreen[bool]):
    """Ask before a change to many messages at once: y or Enter does it, n or Esc not."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "yes"),
        Binding("n,escape", "answer(False)", "no"),
    ]

    def __init__(self, question: str, action: str) -> None:
        super().__init__()
        self.question = question
        self.action = action

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(plain_markup(self.question), classes="title", id="question")
            with Horizontal(classes="buttons"):
                label = plain_markup(f"{self.action} (y)")
                yield Button(label, variant="warning", id="yes")
                yield Button("Cancel (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
