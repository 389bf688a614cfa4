"""The compose screen of the interactive client, and the c/r/a/f/F actions that open it.

All the work is in `mailbag.tui.outgoing` (library calls only). The screen
checks what the user wrote before anything leaves it: a bad address, an empty
recipient list, a subject with a line break or a missing attachment file is
shown under the fields, and the message stays open to fix. A message that
passes is written to the outbox at once; sending (or saving the draft to the
Drafts folder) happens in a worker thread and its outcome appears in the status
bar, also when it only goes out later (offline, server down).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import (
    Button,
    DirectoryTree,
    Footer,
    Input,
    Label,
    OptionList,
    Select,
    Static,
    TextArea,
)

from mailbag.errors import MailbagError
from mailbag.textsafe import clean_terminal, escape_markup, plain_markup
from mailbag.tui.outgoing import Kind, Outgoing, Queued, Start, human_size

if TYPE_CHECKING:
    from mailbag.message.compose import Attachment
    from mailbag.tui.app import MailbagApp

__all__ = [
    "AddressInput",
    "AttachPicker",
    "CompletionMenu",
    "ComposeScreen",
    "OutboxScreen",
    "accept_address",
    "address_span",
    "address_typed",
    "open_compose",
    "open_outbox",
    "send_queued",
]

TITLES: dict[Kind, str] = {
    "new": "New message",
    "reply": "Reply",
    "reply-all": "Reply to all",
    "forward": "Forward",
    "forward-attached": "Forward as attachment",
    "draft": "Draft",
}

CSS = """
ComposeScreen { layout: vertical; }
ComposeScreen .field { height: 1; margin: 0 1; }
ComposeScreen .field Label { width: 9; }
ComposeScreen .field Input, ComposeScreen .field Select { width: 1fr; }
ComposeScreen .field Input { padding: 0; }
ComposeScreen .field Input:focus { background-tint: $foreground 8%; }
ComposeScreen .field Input.-invalid { background-tint: $error 35%; }
#compose-title { text-style: bold; margin: 0 1; }
#compose-body { height: 1fr; }
#attach-row { height: auto; max-height: 6; margin: 0 1; }
#attach-row Label { width: 9; }
#attachments { height: auto; max-height: 5; width: 1fr; border: none; padding: 0; }
#attachments > .option-list--option { padding: 0; }
#compose-error { height: auto; margin: 0 1; color: $error; }
/* one line of compact buttons: all five fit in 80 columns, and the text keeps the rows */
#compose-buttons { height: 1; margin: 0 1; }
#compose-buttons Button { margin-right: 2; min-width: 0; padding: 0 1; }
"""


#: how a forwarded original is listed (the name `message.compose.build` gives the part)
FORWARDED_NAME = "forwarded.eml"


# --- address completion -------------------------------------------------------------------
# Our own small dropdown rather than the textual-autocomplete package: that one asks for
# its candidates synchronously on the UI thread at each keystroke, and the index lookup
# takes ~0.1 s at 200,000 messages; here it runs in a thread, after a short pause in
# typing, one at a time (bench/compose_bench.py measures it).

#: wait this long after a keystroke before asking the index (fast typing asks once)
COMPLETE_DELAY = 0.05
#: matches listed at most
COMPLETE_LIMIT = 8


def address_span(value: str, cursor: int) -> tuple[int, int]:
    """Where the address holding `cursor` is in a comma-separated list: (start, end).

    Commas inside quotes, <...> and (...) do not separate ("Jones, Carol" <c@x>);
    `start` skips the blanks after the separator, `end` is the next separator
    (or the end of the text).
    """
    cuts = [-1]
    quoted = escaped = False
    depth = 0
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif quoted:
            quoted = ch != '"'
        elif ch == '"':
            quoted = True
        elif ch in "<(":
            depth += 1
        elif ch in ">)":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            cuts.append(i)
    cuts.append(len(value))
    cursor = max(0, min(cursor, len(value)))
    for before, after in pairwise(cuts):
        if before < cursor <= after:
            start = before + 1
            while start < after and value[start].isspace():
                start += 1
            return start, after
    return len(value), len(value)  # not reached: the cuts cover the text


def address_typed(value: str, cursor: int) -> str:
    """The address being typed at `cursor` (what completion looks up)."""
    start, end = address_span(value, cursor)
    return value[start:end].strip()


def accept_address(value: str, cursor: int, address: str) -> tuple[str, int]:
    """`value` with the address at `cursor` replaced by `address`: (new value, new cursor).

    At the end of the list a separator follows, ready for the next address; the
    other addresses stay as they were."""
    start, end = address_span(value, cursor)
    head = value[:start]
    if head and not head.endswith(" "):
        head += " "  # "a@x,car" becomes "a@x, Carol <c@x>"
    rest = value[end:]
    if not rest.strip():
        new = head + address + ", "
        return new, len(new)
    return head + address + rest, len(head) + len(address)


class AddressInput(Input):
    """A To/Cc/Bcc field: while the screen's list of matches is open for it, ↑/↓ move
    in the list, Tab or Enter take the highlighted address and Esc closes the list."""

    def __init__(
        self, *args: object, on_menu_key: Callable[[AddressInput, str], bool], **kw: object
    ) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.on_menu_key = on_menu_key

    def on_key(self, event: events.Key) -> None:
        # runs before Input's own handler and before any key binding (tab: next field,
        # enter: submit, escape: close the screen); those run only when the list is closed
        if event.key in ("up", "down", "tab", "enter", "escape") and self.on_menu_key(
            self, event.key
        ):
            event.stop()
            event.prevent_default()


class CompletionMenu(OptionList, can_focus=False):
    """The known addresses matching what is typed, best first, under the field."""

    DEFAULT_CSS = """
    CompletionMenu {
        overlay: screen; position: absolute; constrain: inside inside;
        display: none; width: auto; min-width: 20; max-width: 90%;
        height: auto; max-height: 10; border: round $primary; padding: 0;
        background: $surface;
    }
    CompletionMenu > .option-list--option { padding: 0 1; }
    """


# --- attach: a path picker ----------------------------------------------------------------


class AttachPicker(ModalScreen[str | None]):
    """Choose a file: type a path (Enter) or pick one in the tree."""

    BINDINGS: ClassVar[list[BindingType]] = [("escape", "cancel", "cancel")]
    DEFAULT_CSS = """
    AttachPicker { align: center middle; }
    #picker { width: 100; max-width: 95%; height: 32; max-height: 90%; border: thick $primary;
        background: $surface; padding: 1 2; }
    #picker DirectoryTree { height: 1fr; }
    """

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Label("Attach a file", classes="title")
            yield Input(placeholder="path of the file (Enter), or pick below", id="attach-path")
            yield DirectoryTree(self.root, id="attach-tree")

    @on(Input.Submitted, "#attach-path")
    def _typed(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if value:
            path = Path(value).expanduser()
            self.dismiss(str(path if path.is_absolute() else self.root / path))

    @on(DirectoryTree.FileSelected)
    def _picked(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(str(event.path))

    def action_cancel(self) -> None:
        self.dismiss(None)


class DiscardPrompt(ModalScreen[str | None]):
    """Leaving a message with text in it: save a draft, discard, or keep writing."""

    BINDINGS: ClassVar[list[BindingType]] = [("escape", "keep", "keep writing")]
    # narrower than the other dialogs: it fits an 80-column terminal
    DEFAULT_CSS = """
    #discard-dialog { width: 60; max-width: 100%; height: auto; border: thick $primary;
        background: $surface; padding: 1 2; }
    """

    def compose(self) -> ComposeResult:
        with Vertical(id="discard-dialog"):
            yield Label("Close this message?", classes="title")
            with Horizontal(classes="buttons"):
                yield Button("Save draft", id="draft", variant="primary")
                yield Button("Discard", id="discard", variant="error")
                yield Button("Keep writing", id="keep")

    @on(Button.Pressed)
    def _chosen(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "keep" else event.button.id)

    def action_keep(self) -> None:
        self.dismiss(None)


class OutboxScreen(ModalScreen[tuple[str, str] | None]):
    """What waits in the outbox (queued, failed, uncertain, drafts not yet saved):
    `r` sends one again now, `d` drops it for good."""

    BINDINGS: ClassVar[list[BindingType]] = [
        ("escape", "close", "close"),
        ("r", "retry", "send again"),
        ("d", "drop", "drop"),
    ]

    def __init__(self, outgoing: Outgoing) -> None:
        super().__init__()
        self.outgoing = outgoing
        self.ids: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Outbox", classes="title")
            yield OptionList(id="outbox-list")
            yield Static("r: send again now   d: drop for good   Esc: close", id="outbox-help")

    def on_mount(self) -> None:
        self._fill()

    def _fill(self) -> None:
        options = self.query_one("#outbox-list", OptionList)
        options.clear_options()
        lines = self.outgoing.outbox_lines()
        self.ids = [rid for rid, _ in lines]
        for _, line in lines:
            options.add_option(escape_markup(line))
        if not lines:
            options.add_option("the outbox is empty")
        options.highlighted = 0
        options.focus()

    def _chosen(self) -> str | None:
        index = self.query_one("#outbox-list", OptionList).highlighted
        if index is None or index >= len(self.ids):
            return None
        return self.ids[index]

    def action_retry(self) -> None:
        rid = self._chosen()
        if rid is not None:
            self.dismiss(("retry", rid))

    def action_drop(self) -> None:
        rid = self._chosen()
        if rid is None:
            return
        try:
            subject = self.outgoing.drop(rid)
        except MailbagError as exc:
            self.query_one("#outbox-help", Static).update(escape_markup(_message(exc)))
            return
        self.query_one("#outbox-help", Static).update(
            plain_markup(f"dropped {subject or '(no subject)'!r}")
        )
        self._fill()

    def action_close(self) -> None:
        self.dismiss(None)


# --- the compose screen ---------------------------------------------------------------------


@dataclass(frozen=True)
class Finished:
    """What the compose screen hands back: a message written to the outbox."""

    queued: Queued


class ComposeScreen(Screen[Finished | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "send", "send"),
        Binding("ctrl+r", "save_draft", "save draft"),
        Binding("ctrl+o", "attach", "attach file"),
        Binding("ctrl+g", "editor", "$EDITOR"),
        Binding("escape", "close", "close"),
        Binding("delete", "remove_attachment", "remove attachment", show=False),
    ]
    DEFAULT_CSS = CSS
    # a reply starts in the text, a new message or a forward in To (see `compose`)
    AUTO_FOCUS = ".first"

    def __init__(
        self, outgoing: Outgoing, start: Start, *, attach_root: Path | None = None
    ) -> None:
        super().__init__()
        self.outgoing = outgoing
        self.start = start
        self.attachments: list[Attachment] = list(start.draft.attachments)
        #: the original message of a forward as attachment (its exact bytes), listed
        #: first among the attachments; None once removed
        self.forwarded: bytes | None = start.draft.forwarded
        self.attach_root = attach_root or Path.cwd()
        self._busy = False
        # the address field the list of matches is open for, and the matches in it
        self._menu_owner: AddressInput | None = None
        self._matches: list[str] = []
        self._menu_at = 0  # where the address the matches are for starts in the field
        self._accepted: str | None = None
        # what `_completer` is asked to look up: the field, and a count of changes so
        # a result that comes back after another key (or Esc) is not shown
        self._want = asyncio.Event()
        self._wanted: AddressInput | None = None
        self._generation = 0

    def compose(self) -> ComposeResult:
        d = self.start.draft
        from mailbag.message.addresses import format_list

        yield Label(TITLES[self.start.kind], id="compose-title")
        names = self.outgoing.account_names()
        replying = self.start.kind in ("reply", "reply-all")
        with Horizontal(classes="field"):
            yield Label("From")
            yield Select(
                [(self._from_label(n), n) for n in names],
                value=self.start.account,
                allow_blank=False,
                compact=True,
                id="account",
            )
        for field_id, label, value in (
            ("to", "To", d.to),
            ("cc", "Cc", d.cc),
            ("bcc", "Bcc", d.bcc),
        ):
            with Horizontal(classes="field"):
                yield Label(label)
                yield AddressInput(
                    format_list(value),
                    placeholder="name@example.org, ...",
                    on_menu_key=self._menu_key,
                    id=field_id,
                    compact=True,
                    classes="first" if field_id == "to" and not replying else "",
                )
        with Horizontal(classes="field"):
            yield Label("Subject")
            yield Input(d.subject, id="subject", compact=True)
        yield TextArea(
            d.body,
            id="compose-body",
            soft_wrap=True,
            show_line_numbers=False,
            classes="first" if replying else "",
        )
        with Horizontal(id="attach-row"):
            yield Label("Attached")
            yield OptionList(id="attachments")
        yield Static("", id="compose-error")
        with Horizontal(id="compose-buttons"):
            yield Button("Send", id="send", variant="primary", compact=True)
            yield Button("Save draft", id="save-draft", compact=True)
            yield Button("Attach…", id="attach", compact=True)
            yield Button("Remove attachment", id="remove", compact=True)
            yield Button("Cancel", id="cancel", compact=True)
        yield Footer()
        yield CompletionMenu(id="completions")

    def _from_label(self, account: str) -> str:
        try:
            return clean_terminal(f"{self.outgoing.from_address(account).display()} ({account})")
        except MailbagError:
            return clean_terminal(account)

    def on_mount(self) -> None:
        self.run_worker(self._completer(), group="complete")
        self._show_attachments()
        body = self.query_one("#compose-body", TextArea)
        body.move_cursor((0, 0))

    # --- address completion ---------------------------------------------------------

    def _menu(self) -> CompletionMenu:
        return self.query_one("#completions", CompletionMenu)

    def _look_up(self, field: AddressInput) -> None:
        """`field` changed: look up what it is typing (see `_completer`)."""
        self._generation += 1
        self._wanted = field
        self._want.set()
        token = address_typed(field.value, field.cursor_position)
        if not token or "<" in token:
            self._close_menu()

    def _forget(self) -> None:
        """No list now, and none from a lookup still running (Esc, accepted, focus gone)."""
        self._generation += 1
        self._wanted = None
        self._close_menu()

    async def _completer(self) -> None:
        """One lookup at a time, for what the field holds when it starts.

        A lookup waits for a pause in typing (`COMPLETE_DELAY`) and runs in a thread;
        keys typed meanwhile only ask for one more lookup afterwards, so fast typing
        never piles up threads that slow each other down. A result is shown only if
        nothing changed while it ran."""
        while True:
            await self._want.wait()
            self._want.clear()
            await asyncio.sleep(COMPLETE_DELAY)
            field = self._wanted
            if self._want.is_set() or field is None:
                continue  # still typing, or nothing to look up any more
            generation = self._generation
            token = address_typed(field.value, field.cursor_position)
            if not token or "<" in token:
                continue
            try:
                found = await asyncio.to_thread(self.outgoing.complete, token, limit=COMPLETE_LIMIT)
            except MailbagError:
                found = []
            # `focused`, not `has_focus`, which is off while the terminal window is not focused
            if generation != self._generation or self.focused is not field:
                continue
            if [k.address for k in found[:1]] == [token.casefold()]:
                found = []  # typed in full already
            self._open_menu(field, [clean_terminal(k.display()) for k in found])

    def _open_menu(self, field: AddressInput, matches: list[str]) -> None:
        menu = self._menu()
        if not matches:
            self._close_menu()
            return
        # a list that comes while one is shown (the lookup for a key typed after it) keeps
        # the match the arrow keys moved to, when it still holds it
        shown = menu.highlighted if menu.display and self._menu_owner is field else None
        kept = self._matches[shown] if shown is not None and shown < len(self._matches) else None
        self._menu_owner = field
        self._menu_at = address_span(field.value, field.cursor_position)[0]
        self._matches = matches
        menu.clear_options()
        menu.add_options([Text(m) for m in matches])
        menu.highlighted = matches.index(kept) if kept in matches else 0
        # under the field, its text lined up under the address being typed (the border
        # and the option's padding take two cells; the screen keeps it inside, see the CSS)
        region = field.region
        value = field.value
        typed = self._menu_at + len(value[self._menu_at :]) - len(value[self._menu_at :].lstrip())
        column = field.content_region.x + cell_len(value[:typed]) - field.scroll_offset.x
        menu.styles.offset = (max(region.x, column - 2), region.y + 1)
        menu.display = True

    def _close_menu(self) -> None:
        self._menu_owner = None
        self._matches = []
        if self.is_mounted:
            self._menu().display = False

    def _accept(self, index: int | None) -> None:
        field = self._menu_owner
        if field is None or index is None or not 0 <= index < len(self._matches):
            return
        address = self._matches[index]
        self._forget()
        value, cursor = accept_address(field.value, field.cursor_position, address)
        self._accepted = value  # its Changed event must not open the list again
        field.value = value
        field.cursor_position = cursor

    def _menu_key(self, field: AddressInput, key: str) -> bool:
        """A key in an address field: True when the list of matches used it."""
        if self._menu_owner is not field or not self._menu().display:
            return False
        if address_span(field.value, field.cursor_position)[0] != self._menu_at:
            # the cursor went to another address of the list: the matches are not for it
            self._forget()
            return False
        menu = self._menu()
        if key == "down":
            menu.action_cursor_down()
        elif key == "up":
            menu.action_cursor_up()
        elif key in ("tab", "enter"):
            self._accept(menu.highlighted)
        else:  # escape
            self._forget()
        return True

    @on(OptionList.OptionSelected, "#completions")
    def _clicked(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._accept(event.option_index)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        if event.widget is not self._menu_owner and event.widget is not self._wanted:
            self._forget()

    # --- helpers ------------------------------------------------------------------------

    def _show_attachments(self) -> None:
        options = self.query_one("#attachments", OptionList)
        options.clear_options()
        if self.forwarded is not None:
            size = human_size(len(self.forwarded))
            options.add_option(f"{FORWARDED_NAME}  (the original message, {size})")
        for att in self.attachments:
            options.add_option(
                Text(f"{clean_terminal(att.filename)}  ({human_size(len(att.data))})")
            )
        if not self.attachments and self.forwarded is None:
            options.add_option("(none: Ctrl+O attaches a file)")
        self.query_one("#remove", Button).disabled = not self.attachments and not self.forwarded

    def error(self, text: str) -> None:
        self.query_one("#compose-error", Static).update(plain_markup(text))

    def _account(self) -> str:
        return str(self.query_one("#account", Select).value)

    def _text(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value

    @property
    def dirty(self) -> bool:
        """Something the user wrote would be lost by closing."""
        d = self.start.draft
        from mailbag.message.addresses import format_list

        fields = {"to": d.to, "cc": d.cc, "bcc": d.bcc}
        return (
            self.query_one("#compose-body", TextArea).text.strip() != d.body.strip()
            or self._text("subject") != d.subject
            or any(self._text(f).strip() != format_list(v) for f, v in fields.items())
            or len(self.attachments) != len(d.attachments)
            or self.forwarded is not d.forwarded
        )

    def _check_fields(self) -> bool:
        """Parse each address field on its own, marking the bad one; True when all parse."""
        ok = True
        first_error = ""
        for field_id, what in (("to", "To"), ("cc", "Cc"), ("bcc", "Bcc")):
            widget = self.query_one(f"#{field_id}", Input)
            try:
                self.outgoing.addresses(widget.value, what)
            except MailbagError as exc:
                widget.add_class("-invalid")
                if ok:
                    first_error = _message(exc)
                ok = False
            else:
                widget.remove_class("-invalid")
        if not ok:
            self.error(first_error)
        return ok

    def _queue(self, *, as_draft: bool) -> None:
        if self._busy:
            return
        if not self._check_fields():
            return
        try:
            draft = self.outgoing.finish(
                self.start,
                account=self._account(),
                to=self._text("to"),
                cc=self._text("cc"),
                bcc=self._text("bcc"),
                subject=self._text("subject"),
                body=self.query_one("#compose-body", TextArea).text,
                attachments=self.attachments,
                keep_forwarded=self.forwarded is not None,
                for_draft=as_draft,
            )
            queued = self.outgoing.queue(self.start, self._account(), draft, as_draft=as_draft)
        except MailbagError as exc:
            self.error(_message(exc))
            if "subject" in exc.message:
                self.query_one("#subject", Input).add_class("-invalid")
            return
        self._busy = True
        self.dismiss(Finished(queued))

    # --- actions ------------------------------------------------------------------------

    def action_send(self) -> None:
        self._queue(as_draft=False)

    def action_save_draft(self) -> None:
        self._queue(as_draft=True)

    def action_attach(self) -> None:
        def chosen(path: str | None) -> None:
            if path is None:
                return
            try:
                att = self.outgoing.attachment(path)
            except MailbagError as exc:
                self.error(_message(exc))
                return
            self.attachments.append(att)
            self._show_attachments()
            self.error("")

        self.app.push_screen(AttachPicker(self.attach_root), chosen)

    def action_remove_attachment(self) -> None:
        options = self.query_one("#attachments", OptionList)
        # the list shows the forwarded original (if any) first, then the files
        first = 0 if self.forwarded is None else 1
        count = first + len(self.attachments)
        if not count:
            return
        index = options.highlighted
        if index is None or index >= count:
            index = count - 1
        if index < first:
            self.forwarded = None
        else:
            del self.attachments[index - first]
        self._show_attachments()

    def action_editor(self) -> None:
        """Write the text in $EDITOR (the app is suspended meanwhile)."""
        from mailbag.message.editor import edit_text

        area = self.query_one("#compose-body", TextArea)
        workdir = self.outgoing.paths.state_dir / "compose"
        failed: MailbagError | None = None
        text = area.text
        try:
            with self.app.suspend():
                # nothing may escape this block: the app resumes only when it ends normally
                try:
                    text = edit_text(area.text, workdir)
                except MailbagError as exc:
                    failed = exc
        except SuspendNotSupported:
            self.error("this terminal cannot hand over to an editor; write the text here")
            return
        if failed is not None:
            self.error(_message(failed))
            return
        area.load_text(text)
        self.error("")

    def action_close(self) -> None:
        if not self.dirty:
            self.dismiss(None)
            return

        def chosen(answer: str | None) -> None:
            if answer == "discard":
                self.dismiss(None)
            elif answer == "draft":
                self.action_save_draft()

        self.app.push_screen(DiscardPrompt(), chosen)

    @on(Button.Pressed, "#send")
    def _send_pressed(self) -> None:
        self.action_send()

    @on(Button.Pressed, "#save-draft")
    def _draft_pressed(self) -> None:
        self.action_save_draft()

    @on(Button.Pressed, "#attach")
    def _attach_pressed(self) -> None:
        self.action_attach()

    @on(Button.Pressed, "#remove")
    def _remove_pressed(self) -> None:
        self.action_remove_attachment()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_close()

    @on(Input.Changed)
    def _edited(self, event: Input.Changed) -> None:
        event.input.remove_class("-invalid")
        field = event.input
        if not isinstance(field, AddressInput):
            return
        accepted, self._accepted = self._accepted, None
        if self.focused is not field or event.value == accepted:
            return
        self._look_up(field)

    @on(Select.Changed, "#account")
    def _account_changed(self, event: Select.Changed) -> None:
        self.error("")


def _message(exc: MailbagError) -> str:
    return exc.message + (f" ({exc.hint})" if exc.hint else "")


# --- the app side: c / r / a / f --------------------------------------------------------------


def open_compose(app: MailbagApp, kind: Kind) -> None:
    """Open the compose screen for a new message, a reply (to all), a forward of the
    highlighted message (inline, or as an attachment), or to continue the highlighted draft."""
    outgoing = Outgoing(app.view.paths)
    try:
        if kind == "new":
            account = app.current[0] if app.current is not None else None
            start = outgoing.new(account)
        else:
            # the message being read, else the highlighted one (as `v` does)
            row = app.reading or app.selected()
            if row is None:
                app.status("no message selected")
                return
            if kind in ("forward", "forward-attached"):
                start = outgoing.forward(row.id, as_attachment=kind == "forward-attached")
            elif kind == "draft":
                start = outgoing.resume(row.id)
            else:
                start = outgoing.reply(row.id, reply_all=kind == "reply-all")
    except MailbagError as exc:
        app.status(_message(exc))
        return

    def done(result: Finished | None) -> None:
        if result is None:
            return
        q = result.queued
        what = "saving draft" if q.draft else "sending"
        app.status(f"{what} {clean_terminal(q.subject or '(no subject)')!r} ...")
        send_queued(app, outgoing, [q.id])

    app.push_screen(ComposeScreen(outgoing, start), done)


def open_outbox(app: MailbagApp) -> None:
    """Show the outbox; a message chosen for `r` is queued again and sent now."""
    outgoing = Outgoing(app.view.paths)

    def done(result: tuple[str, str] | None) -> None:
        if result is None:
            return
        _, rid = result
        try:
            outgoing.retry(rid)
        except MailbagError as exc:
            app.status(_message(exc))
            return
        app.status("sending again ...")
        send_queued(app, outgoing, [rid])

    app.push_screen(OutboxScreen(outgoing), done)


def send_queued(app: MailbagApp, outgoing: Outgoing, ids: list[str]) -> None:
    """Send (or save to Drafts) in a worker thread; the outcome goes to the status bar."""

    def run() -> None:
        lines = outgoing.flush(ids) or ["nothing to send"]
        # the status line, and the lists redrawn (a reply marks its original answered)
        app.call_from_thread(app._synced, lines, app.view.folders())
        if not all(line.startswith(("sent ", "saved ")) for line in lines):
            # the status bar is one line: the whole outcome goes into a notification too
            app.call_from_thread(app.notify, "\n".join(lines), severity="warning", timeout=15)

    app.run_worker(run, thread=True, group="send")
