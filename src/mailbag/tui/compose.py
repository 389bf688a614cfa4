"""The compose screen of the interactive client, and the c/r/a/f actions that open it.

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
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.suggester import Suggester
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
from mailbag.textsafe import clean_terminal
from mailbag.tui.outgoing import Kind, Outgoing, Queued, Start, human_size

if TYPE_CHECKING:
    from mailbag.message.compose import Attachment
    from mailbag.tui.app import MailbagApp

__all__ = [
    "AddressSuggester",
    "AttachPicker",
    "ComposeScreen",
    "OutboxScreen",
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
#suggest { height: 1; margin: 0 1 0 10; color: $text-muted; }
#compose-body { height: 1fr; }
#attach-row { height: auto; max-height: 6; margin: 0 1; }
#attach-row Label { width: 9; }
#attachments { height: auto; max-height: 5; width: 1fr; border: none; padding: 0; }
#attachments > .option-list--option { padding: 0; }
#compose-error { height: auto; margin: 0 1; color: $error; }
#compose-buttons { height: 3; margin: 0 1; }
#compose-buttons Button { margin-right: 1; }
"""


#: how a forwarded original is listed (the name `message.compose.build` gives the part)
FORWARDED_NAME = "forwarded.eml"


# --- address completion -------------------------------------------------------------------

#: told the field's value and the candidates for the address being typed in it (best
#: first), to list them
OnMatches = Callable[[str, list[str]], None]


class AddressSuggester(Suggester):
    """Completes the address being typed (after the last comma) from the index.

    The inline suggestion is the best-ranked match (→ accepts it); the
    next few are offered through `on_matches` so the screen can list them.
    """

    def __init__(self, outgoing: Outgoing, on_matches: OnMatches) -> None:
        # case-sensitive here so the Input keeps what the user typed (matching is
        # case-insensitive in `known_addresses`); no cache, so the list of matches
        # below the fields is always asked for and always current
        super().__init__(use_cache=False, case_sensitive=True)
        self.outgoing = outgoing
        self.on_matches = on_matches

    async def get_suggestion(self, value: str) -> str | None:
        token = value.rpartition(",")[2]
        token = token.lstrip()
        if not token or "<" in token:
            self.on_matches(value, [])
            return None
        lead = value[: len(value) - len(token)]
        try:
            found = await asyncio.to_thread(self.outgoing.complete, token)
        except MailbagError:
            return None
        if [k.address for k in found[:1]] == [token.casefold()]:
            found = []  # complete already
        self.on_matches(value, [clean_terminal(k.display()) for k in found])
        folded = token.casefold()
        for k in found:
            # the inline text must continue what was typed: the name when the name
            # was typed, else the bare address
            for text in (k.display(), k.address):
                if text.casefold().startswith(folded) and text != token:
                    return lead + clean_terminal(text)
        return None


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

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
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
            options.add_option(_escape(line))
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
            self.query_one("#outbox-help", Static).update(_escape(_message(exc)))
            return
        self.query_one("#outbox-help", Static).update(
            _escape(clean_terminal(f"dropped {subject or '(no subject)'!r}"))
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
                yield Input(
                    format_list(value),
                    placeholder="name@example.org, ...",
                    suggester=AddressSuggester(
                        self.outgoing, partial(self._show_matches, field_id)
                    ),
                    id=field_id,
                    compact=True,
                    classes="first" if field_id == "to" and not replying else "",
                )
        yield Static("", id="suggest")
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
            yield Button("Send", id="send", variant="primary")
            yield Button("Save draft", id="save-draft")
            yield Button("Attach…", id="attach")
            yield Button("Remove attachment", id="remove")
            yield Button("Cancel", id="cancel")
        yield Footer()

    def _from_label(self, account: str) -> str:
        try:
            return clean_terminal(f"{self.outgoing.from_address(account).display()} ({account})")
        except MailbagError:
            return clean_terminal(account)

    def on_mount(self) -> None:
        self._show_attachments()
        body = self.query_one("#compose-body", TextArea)
        body.move_cursor((0, 0))

    # --- helpers ------------------------------------------------------------------------

    def _show_matches(self, field_id: str, value: str, matches: list[str]) -> None:
        # only for the field being typed in (fields filled at the start ask too), for
        # what it holds now (lookups for earlier keystrokes can finish later), and not
        # once the screen is gone; `focused`, not `has_focus`, which is off while the
        # terminal window is not focused
        focused = self.focused if self.is_attached else None
        if not isinstance(focused, Input) or focused.id != field_id or focused.value != value:
            return
        text = ""
        if matches:
            text = "→ accepts: " + matches[0]
            if len(matches) > 1:
                text += "   also: " + ";  ".join(matches[1:4])
        self.query_one("#suggest", Static).update(_escape(text))

    def _show_attachments(self) -> None:
        options = self.query_one("#attachments", OptionList)
        options.clear_options()
        if self.forwarded is not None:
            size = human_size(len(self.forwarded))
            options.add_option(f"{FORWARDED_NAME}  (the original message, {size})")
        for att in self.attachments:
            options.add_option(f"{clean_terminal(att.filename)}  ({human_size(len(att.data))})")
        if not self.attachments and self.forwarded is None:
            options.add_option("(none: Ctrl+O attaches a file)")
        self.query_one("#remove", Button).disabled = not self.attachments and not self.forwarded

    def error(self, text: str) -> None:
        self.query_one("#compose-error", Static).update(_escape(clean_terminal(text)))

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
        if event.input.id not in ("to", "cc", "bcc") or not event.value.strip():
            self.query_one("#suggest", Static).update("")

    @on(Select.Changed, "#account")
    def _account_changed(self, event: Select.Changed) -> None:
        self.error("")


def _message(exc: MailbagError) -> str:
    return exc.message + (f" ({exc.hint})" if exc.hint else "")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


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
        app.call_from_thread(app._synced, lines)
        if not all(line.startswith(("sent ", "saved ")) for line in lines):
            # the status bar is one line: the whole outcome goes into a notification too
            app.call_from_thread(app.notify, "\n".join(lines), severity="warning", timeout=15)

    app.run_worker(run, thread=True, group="send")
