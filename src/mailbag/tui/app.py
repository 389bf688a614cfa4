"""The interactive client: folders, a message list and a reading pane.

Everything it shows or changes goes through `MailView` (library calls only);
network work (sync, account test) runs in worker threads so the screen never
waits on a server. Changes apply locally at once and reach the server on the
next sync.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static, Tree

from mailbag.errors import MailbagError
from mailbag.paths import Paths
from mailbag.textsafe import clean_terminal
from mailbag.tui.compose import open_compose
from mailbag.tui.outgoing import Outgoing
from mailbag.tui.screens import AccountDialog, FolderPicker, HelpScreen, SearchPrompt
from mailbag.tui.view import FolderRow, MailView, MessageRow

PAGE = 500  # rows loaded at a time; more are loaded as the cursor nears the end


class MailbagApp(App[None]):
    TITLE = "mailbag"
    CSS = """
    #folders { width: 28; border-right: solid $primary-darken-2; }
    #right { width: 1fr; }
    #messages { height: 45%; }
    #reader { height: 1fr; border-top: solid $primary-darken-2; padding: 0 1; }
    #status { height: 1; background: $boost; padding: 0 1; }
    #dialog, #account-dialog {
        width: 90; max-height: 90%; height: auto; border: thick $primary;
        background: $surface; padding: 1 2; align: center middle;
    }
    ModalScreen { align: center middle; }
    .title { text-style: bold; margin-bottom: 1; }
    .row { height: 3; }
    .rowlabel { width: 10; padding: 1 0; }
    .row .host { width: 1fr; }
    .row .port { width: 9; }
    .row Select { width: 24; }
    #protocol { width: 1fr; }
    .buttons { height: 3; margin-top: 1; }
    #steps { margin-top: 1; height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        Binding("question_mark", "help", "help"),
        Binding("slash", "search", "search"),
        Binding("g", "sync", "get mail"),
        Binding("s", "toggle_flagged", "flag"),
        Binding("u", "toggle_seen", "read/unread"),
        Binding("m", "move", "move"),
        Binding("d", "delete", "delete"),
        Binding("A", "add_account", "add account"),
        Binding("c", "compose", "compose"),
        Binding("r", "reply", "reply"),
        Binding("a", "reply_all", "reply all"),
        Binding("f", "forward", "forward"),
        Binding("escape", "leave_search", show=False),
        Binding("j", "cursor_down", show=False),
        Binding("k", "cursor_up", show=False),
    ]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # the main screen's keys work there only: a letter typed on a button of the
        # compose screen or a dialog must not quit, delete or open another screen
        return not (len(self.screen_stack) > 1 and action in _MAIN_ACTIONS)

    def __init__(
        self,
        paths: Paths,
        *,
        sync_on_start: bool = True,
        poll_seconds: float = 120.0,
        push: bool = True,
    ) -> None:
        super().__init__()
        self.view = MailView(paths)
        self.sync_on_start = sync_on_start
        self.poll_seconds = poll_seconds
        self.push = push
        self._stop_push = threading.Event()
        self.current: tuple[str, str] | None = None  # (account, folder)
        self.rows: list[MessageRow] = []
        self.searching: str | None = None
        self._loaded_all = False

    # --- layout ----------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield Tree("accounts", id="folders")
            with Vertical(id="right"):
                table: DataTable[str] = DataTable(id="messages", cursor_type="row")
                yield table
                with VerticalScroll(id="reader"):
                    yield Static("", id="body")
        yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#messages", DataTable)
        table.add_column("", key="marks", width=4)
        table.add_column("date", key="date", width=10)
        table.add_column("from", key="from", width=24)
        table.add_column("subject", key="subject")
        tree = self.query_one("#folders", Tree)
        tree.show_root = False
        self.refresh_folders(select_first=True)
        if not self.view.accounts():
            self.status("no account yet: press A to add one, ? for help")
        elif self.sync_on_start:
            self.action_sync()
        if self.push:
            # new mail shows up without a keypress: IMAP IDLE per account ...
            for name in self.view.start_push(self._pushed, self._stop_push, self._push_error):
                self.log(f"push mail on for {name}")
        if self.poll_seconds > 0:
            # ... and a background sync every poll_seconds (POP3, other folders)
            self.set_interval(self.poll_seconds, self._poll)
        table.focus()

    def _pushed(self, account: str, count: int) -> None:
        self.call_from_thread(self._new_mail, account, count)

    def _push_error(self, account: str, message: str) -> None:
        self.call_from_thread(self.status, f"{account}: {message} (retrying)")

    def _new_mail(self, account: str, count: int) -> None:
        self.status(f"{account}: {count} new")
        self._synced([])

    def on_unmount(self) -> None:
        self._stop_push.set()

    def _poll(self) -> None:
        if self.view.accounts():
            self._sync()

    def status(self, text: str) -> None:
        self.query_one("#status", Static).update(clean_terminal(text))

    # --- folders ---------------------------------------------------------------------

    def refresh_folders(self, *, select_first: bool = False) -> None:
        tree = self.query_one("#folders", Tree)
        tree.clear()
        by_account: dict[str, Any] = {}
        first = None
        for row in self.view.folders():
            node = by_account.get(row.account)
            if node is None:
                node = tree.root.add(clean_terminal(row.account), expand=True)
                by_account[row.account] = node
            leaf = node.add_leaf(row.label, data=row)
            if first is None and row.role == "inbox":
                first = leaf
        if select_first and first is not None and first.data is not None:
            self.open_folder(first.data.account, first.data.name)

    @on(Tree.NodeSelected, "#folders")
    def _folder_chosen(self, event: Tree.NodeSelected[FolderRow]) -> None:
        if event.node.data is not None:
            self.open_folder(event.node.data.account, event.node.data.name)
            self.query_one("#messages", DataTable).focus()

    def open_folder(self, account: str, folder: str) -> None:
        self.current = (account, folder)
        self.searching = None
        self.show_rows(self.view.messages(account, folder, limit=PAGE))
        self._loaded_all = len(self.rows) < PAGE
        self.sub_title = f"{account} / {folder}"

    # --- message list ----------------------------------------------------------------

    def show_rows(self, rows: list[MessageRow]) -> None:
        table = self.query_one("#messages", DataTable)
        table.clear()
        self.rows = rows
        self._add_rows(rows)
        self.query_one("#body", Static).update("")
        if not rows:
            self.query_one("#body", Static).update("(no messages)")

    def _add_rows(self, rows: Iterable[MessageRow]) -> None:
        table = self.query_one("#messages", DataTable)
        for r in rows:
            table.add_row(r.marks, r.date, r.sender[:24], r.subject, key=r.id)

    @on(DataTable.RowHighlighted, "#messages")
    def _near_end(self, event: DataTable.RowHighlighted) -> None:
        # virtual paging: large folders load PAGE rows at a time as the cursor moves down
        if self._loaded_all or self.current is None or self.searching is not None:
            return
        if event.cursor_row >= len(self.rows) - 20:
            account, folder = self.current
            more = self.view.messages(account, folder, limit=len(self.rows) + PAGE)
            new = more[len(self.rows) :]
            self._loaded_all = len(new) < PAGE
            self.rows.extend(new)
            self._add_rows(new)

    def selected(self) -> MessageRow | None:
        table = self.query_one("#messages", DataTable)
        if not self.rows or table.cursor_row < 0 or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def _replace_row(self, row: MessageRow) -> None:
        table = self.query_one("#messages", DataTable)
        index = next((i for i, r in enumerate(self.rows) if r.id == row.id), None)
        if index is None:
            return
        self.rows[index] = row
        table.update_cell(row.id, "marks", row.marks)

    def _drop_row(self, message_id: str) -> None:
        table = self.query_one("#messages", DataTable)
        self.rows = [r for r in self.rows if r.id != message_id]
        table.remove_row(message_id)
        self.query_one("#body", Static).update("")

    @on(DataTable.RowSelected, "#messages")
    def _open(self, event: DataTable.RowSelected) -> None:
        row = self.selected()
        if row is None:
            return
        try:
            shown = self.view.read(row.id)
        except MailbagError as exc:
            self.status(exc.message)
            return
        head = "\n".join(f"[b]{name}:[/b] {_escape(value)}" for name, value in shown.headers)
        parts = [head]
        if shown.attachments:
            parts.append("[b]Attachments:[/b] " + _escape(", ".join(shown.attachments)))
        for note in shown.notes:
            parts.append(f"[yellow]note:[/] {_escape(note)}")
        parts.append("")
        parts.append(_escape(shown.body))
        self.query_one("#body", Static).update("\n".join(parts))
        self.query_one("#reader", VerticalScroll).scroll_home(animate=False)
        if "\\Seen" not in row.flags:
            self._replace_row(
                MessageRow(
                    row.id,
                    row.date,
                    row.sender,
                    row.subject,
                    row.flags | {"\\Seen"},
                    row.has_attachments,
                    row.size,
                )
            )

    # --- actions ---------------------------------------------------------------------

    def action_cursor_down(self) -> None:
        self.query_one("#messages", DataTable).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one("#messages", DataTable).action_cursor_up()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def _flag(self, flag: str) -> None:
        row = self.selected()
        if row is None:
            return
        try:
            self._replace_row(self.view.toggle_flag(row.id, flag))
        except MailbagError as exc:
            self.status(exc.message)

    def action_toggle_flagged(self) -> None:
        self._flag("\\Flagged")

    def action_toggle_seen(self) -> None:
        self._flag("\\Seen")

    def action_delete(self) -> None:
        row = self.selected()
        if row is None:
            return
        try:
            self.view.delete(row.id)
        except MailbagError as exc:
            self.status(exc.message)
            return
        self._drop_row(row.id)
        self.status("moved to Trash (the next sync applies it on the server)")
        self.refresh_folders()

    def action_move(self) -> None:
        row = self.selected()
        if row is None or self.current is None:
            return
        account, here = self.current
        choices = [f for f in self.view.folder_names(account) if f != here]

        def done(target: str | None) -> None:
            if target is None:
                return
            try:
                self.view.move(row.id, target)
            except MailbagError as exc:
                self.status(exc.message)
                return
            self._drop_row(row.id)
            self.status(f"moved to {target} (the next sync applies it on the server)")
            self.refresh_folders()

        self.push_screen(FolderPicker(choices), done)

    def action_search(self) -> None:
        def done(query: str | None) -> None:
            if not query:
                return
            try:
                rows = self.view.search(query)
            except MailbagError as exc:
                self.status(exc.message)
                return
            self.searching = query
            self.show_rows(rows)
            self.sub_title = f"search: {query}"
            self.status(f"{len(rows)} messages match; Esc goes back")

        self.push_screen(SearchPrompt(), done)

    def action_leave_search(self) -> None:
        if self.searching is not None and self.current is not None:
            self.open_folder(*self.current)
            self.status("")

    def action_add_account(self) -> None:
        def done(name: str | None) -> None:
            if name:
                self.status(f"account {name} saved; syncing ...")
                self.action_sync()

        self.push_screen(AccountDialog(self.view), done)

    # compose, reply, reply all, forward: mailbag.tui.compose
    def action_compose(self) -> None:
        open_compose(self, "new")

    def action_reply(self) -> None:
        open_compose(self, "reply")

    def action_reply_all(self) -> None:
        open_compose(self, "reply-all")

    def action_forward(self) -> None:
        open_compose(self, "forward")

    def action_sync(self) -> None:
        self.status("syncing ...")
        self._sync()

    @work(thread=True, exclusive=True, group="sync")
    def _sync(self) -> None:
        # the outbox first: what waited offline goes out, and the Sent copies come down
        lines = Outgoing(self.view.paths).flush(wait=5)
        lines += self.view.sync(lambda note: self.call_from_thread(self.status, note))
        self.call_from_thread(self._synced, lines)

    def _synced(self, lines: list[str]) -> None:
        if lines:
            self.status("; ".join(lines))
        self.refresh_folders(select_first=self.current is None)
        if self.current is not None and self.searching is None:
            cursor = self.query_one("#messages", DataTable).cursor_row
            self.open_folder(*self.current)
            if 0 <= cursor < len(self.rows):
                self.query_one("#messages", DataTable).move_cursor(row=cursor)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Get mail", "sync every account now", self.action_sync)
        yield SystemCommand("Search", "search all mail", self.action_search)
        yield SystemCommand("Compose", "write a new message (c)", self.action_compose)
        yield SystemCommand("Reply", "reply to the highlighted message (r)", self.action_reply)
        yield SystemCommand("Reply all", "reply to everyone on it (a)", self.action_reply_all)
        yield SystemCommand("Forward", "forward the highlighted message (f)", self.action_forward)
        yield SystemCommand("Add account", "find settings, test, save", self.action_add_account)
        yield SystemCommand("Keys", "every key of the client", self.action_help)


_MAIN_ACTIONS = frozenset(
    b.action for b in MailbagApp.BINDINGS if isinstance(b, Binding) and b.action != "leave_search"
)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def run_tui(paths: Paths) -> int:
    MailbagApp(paths).run()
    return 0
