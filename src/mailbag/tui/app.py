"""The interactive client: folders, a message list and a reading pane.

Everything it shows or changes goes through `MailView` (library calls only);
network work (sync, account test) runs in worker threads so the screen never
waits on a server. Changes apply locally at once and reach the server on the
next sync.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from rich.cells import cell_len, set_cell_size
from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, Tree
from textual.widgets.tree import TreeNode

from mailbag.errors import MailbagError
from mailbag.paths import Paths
from mailbag.store.listing import ThreadSummary
from mailbag.textsafe import clean_terminal, escape_markup
from mailbag.tui.account_dialog import AccountDialog
from mailbag.tui.compose import open_compose, open_outbox
from mailbag.tui.message_list import MessageList, header_line
from mailbag.tui.outgoing import Outgoing
from mailbag.tui.screens import (
    AttachmentsScreen,
    ConfirmPrompt,
    FolderPicker,
    HelpScreen,
    MessagesScreen,
    SearchPrompt,
)
from mailbag.tui.uistate import UiState
from mailbag.tui.view import FolderRow, ListModel, MailView, MessageRow, Rendered

MESSAGES_KEPT = 200
MORE = " … (M: whole message)"


def fit_status(text: str, width: int) -> str:
    """`text` cut to `width` terminal cells, saying where to read the rest when it does not fit."""
    if cell_len(text) <= width or width <= cell_len(MORE) + 10:
        return text
    return set_cell_size(text, width - cell_len(MORE)).rstrip() + MORE


class MailbagApp(App[None]):
    TITLE = "mailbag"
    CSS = """
    #folders { width: 28; border-right: solid $primary-darken-2; }
    #right { width: 1fr; }
    #list-pane { height: 45%; }
    #list-header { height: 1; background: $boost; color: $text-muted; }
    #messages { height: 1fr; }
    #reader { height: 1fr; border-top: solid $primary-darken-2; padding: 0 1; }
    #status { height: 1; background: $boost; padding: 0 1; }
    #dialog, #account-dialog {
        width: 90; max-width: 100%; max-height: 90%; height: auto; border: thick $primary;
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
        Binding("E", "edit_account", "edit account", show=False),
        Binding("t", "toggle_threads", "threads"),
        Binding("v", "attachments", "attachments"),
        Binding("c", "compose", "compose"),
        Binding("r", "reply", "reply"),
        Binding("a", "reply_all", "reply all"),
        Binding("f", "forward", "forward"),
        Binding("F", "forward_attached", "forward as attachment", show=False),
        Binding("e", "edit_draft", "edit draft", show=False),
        Binding("o", "outbox", "outbox", show=False),
        Binding("M", "messages", "messages", show=False),
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
        self.searching: str | None = None
        # by conversation or not: chosen per folder with `t` and remembered (see open_folder)
        self.ui_state, self._state_problem = UiState.load(paths.tui_state_file)
        self.threaded = False
        self.reading: MessageRow | None = None  # what the reading pane shows
        self._folder_nodes: dict[tuple[str, str], TreeNode[FolderRow]] = {}
        # what the status bar said, whole (the bar is one line and cuts long news):
        # `M` shows it again; progress notes are not kept
        self.status_text = ""
        self.messages: deque[tuple[str, str]] = deque(maxlen=MESSAGES_KEPT)

    # --- layout ----------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield Tree("accounts", id="folders")
            with Vertical(id="right"):
                with Vertical(id="list-pane"):
                    yield Static(header_line(), id="list-header")
                    yield MessageList(id="messages")
                with VerticalScroll(id="reader"):
                    yield Static("", id="body")
        yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        tree = self.query_one("#folders", Tree)
        tree.show_root = False
        self.refresh_folders(select_first=True)
        if self._state_problem is not None:
            self.status(self._state_problem)
            self.notify(self._state_problem, severity="warning", timeout=10)
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
        self.message_list.focus()

    def _pushed(self, account: str, count: int) -> None:
        # on the watcher's thread: the counts are read here, not on the UI thread
        self._from_watcher(self._new_mail, account, count, self.view.folders())

    def _push_error(self, account: str, message: str) -> None:
        self._from_watcher(self.status, f"{account}: {message} (retrying)")

    def _from_watcher(self, callback: Callable[..., object], *args: object) -> None:
        """Hand a watcher thread's report to the UI. The watchers notice the stop only
        when their IDLE wakes up, so a report can come after the app has closed: drop it."""
        if self._stop_push.is_set():
            return
        try:
            self.call_from_thread(callback, *args)
        except RuntimeError:
            if not self._stop_push.is_set():
                raise

    def _new_mail(self, account: str, count: int, rows: list[FolderRow]) -> None:
        self.status(f"{account}: {count} new")
        self._synced([], rows)

    def call_from_thread(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a worker's callback on the UI thread, unless the app has begun to shut
        down: its screens and widgets are then being taken apart (the sync, search,
        grouping, dialog and sign-in workers report back through here), so a late
        report is dropped and the worker gets None instead of a NoMatches error."""

        def unless_closing() -> Any:
            return callback(*args, **kwargs) if self.is_running else None

        return super().call_from_thread(unless_closing)

    def on_unmount(self) -> None:
        self._stop_push.set()
        self.view.cleanup()

    def _poll(self) -> None:
        if self.view.accounts():
            self._sync()

    def status(self, text: str, *, keep: bool = True) -> None:
        """Say `text` in the status bar; `keep` also puts it in the message log (`M`),
        so what the bar had to cut, or what the next news replaced, can be read whole."""
        self.status_text = clean_terminal(text)
        repeated = bool(self.messages) and self.messages[-1][1] == self.status_text
        if keep and self.status_text and not repeated:
            self.messages.append((time.strftime("%H:%M:%S"), self.status_text))
        self._show_status()

    def _show_status(self) -> None:
        found = self.query("#status").results(Static)
        bar = next(found, None)
        if bar is None:
            return  # the app is closing: a worker's last news has no bar to go to
        width = bar.content_region.width or self.size.width - 2
        # plain text: a subject or folder name like `[Gmail]/Sent` is not markup
        bar.update(Text(fit_status(self.status_text, width)))

    def on_resize(self, event: events.Resize) -> None:
        self.call_after_refresh(self._show_status)

    def action_messages(self) -> None:
        self.push_screen(MessagesScreen(list(self.messages)))

    # --- folders ---------------------------------------------------------------------

    def refresh_folders(
        self, *, select_first: bool = False, rows: list[FolderRow] | None = None
    ) -> None:
        """Folder names and counts from the store (or `rows`, counted by a worker);
        labels change in place when the folders are the same, so the tree keeps its cursor."""
        tree = self.query_one("#folders", Tree)
        if rows is None:
            rows = self.view.folders()
        keys = [(r.account, r.name) for r in rows]
        if keys == list(self._folder_nodes) and not select_first:
            for row in rows:
                self._set_folder(row)
            return
        tree.clear()
        self._folder_nodes = {}
        by_account: dict[str, Any] = {}
        first = None
        for row in rows:
            node = by_account.get(row.account)
            if node is None:
                node = tree.root.add(clean_terminal(row.account), expand=True)
                by_account[row.account] = node
            leaf = node.add_leaf(row.label, data=row)
            self._folder_nodes[(row.account, row.name)] = leaf
            if first is None and row.role == "inbox":
                first = leaf
        if select_first and first is not None and first.data is not None:
            self.open_folder(first.data.account, first.data.name)

    def _set_folder(self, row: FolderRow) -> None:
        node = self._folder_nodes.get((row.account, row.name))
        if node is not None and node.data != row:
            node.data = row
            node.set_label(row.label)

    def _count(self, account: str, folder: str, total: int, unread: int) -> None:
        """Adjust a folder's counts after a change made here (no recount of the store)."""
        node = self._folder_nodes.get((account, folder))
        if node is None or node.data is None:
            return
        row = node.data
        self._set_folder(
            FolderRow(
                row.account,
                row.name,
                row.role,
                max(0, row.total + total),
                max(0, row.unread + unread),
            )
        )

    def folder_row(self, account: str, folder: str) -> FolderRow | None:
        node = self._folder_nodes.get((account, folder))
        return None if node is None else node.data

    @on(Tree.NodeSelected, "#folders")
    def _folder_chosen(self, event: Tree.NodeSelected[FolderRow]) -> None:
        if event.node.data is not None:
            self.open_folder(event.node.data.account, event.node.data.name)
            self.message_list.focus()

    def open_folder(self, account: str, folder: str, *, keep: str | None = None) -> None:
        """Show a folder (flat at once; by conversation when that is on, computed in a worker).
        `keep`: the message ID to put the cursor back on."""
        again = self.current == (account, folder) and self.searching is None
        self.current = (account, folder)
        self.searching = None
        self.threaded = self.ui_state.threaded(account, folder)
        self.sub_title = f"{account} / {folder}"
        refresh = self.threaded and again and self.model.threaded
        if not refresh:
            # a grouped list being refreshed stays up until the new grouping is ready
            counted = self.folder_row(account, folder)
            model = self.view.message_list(account, folder, size=counted.total if counted else 0)
            self.show_model(model, keep=keep)
            if not model.complete:
                self._complete(account, folder, model)
        if self.threaded:
            if not refresh:
                self.status("grouping conversations ...", keep=False)
            self._group(account, folder, keep, refresh)

    @work(thread=True, exclusive=True, group="order")
    def _complete(self, account: str, folder: str, model: ListModel) -> None:
        ids = self.view.message_order(account, folder)
        self.call_from_thread(self._completed, model, ids)

    def _completed(self, model: ListModel, ids: list[int]) -> None:
        if self.model is not model:
            return  # another list is up by now
        selected = self.selected()
        model.complete_with(ids)
        lst = self.message_list
        if selected is not None:
            lst.cursor = model.index_of(selected.id) or lst.cursor
        lst.changed()

    @work(thread=True, exclusive=True, group="threads")
    def _group(self, account: str, folder: str, keep: str | None, refresh: bool) -> None:
        model = self.view.thread_list(account, folder)
        self.call_from_thread(self._grouped, account, folder, model, keep, refresh)

    def _grouped(
        self, account: str, folder: str, model: ListModel, keep: str | None, refresh: bool
    ) -> None:
        if self.current != (account, folder) or not self.threaded or self.searching is not None:
            return  # the user went elsewhere meanwhile
        self.log(f"conversations of {folder}: {self.view.last_grouping}")
        selected = self.selected()
        if self.model.threaded:
            model.unfold_like(self.model)  # what was unfolded stays so after a sync
        self.show_model(model, keep=selected.id if selected is not None else keep)
        if not refresh:
            self.status(f"{len(model)} conversations")

    # --- message list ----------------------------------------------------------------

    @property
    def message_list(self) -> MessageList:
        return self.query_one("#messages", MessageList)

    @property
    def model(self) -> ListModel:
        return self.message_list.model

    def show_model(self, model: ListModel, *, keep: str | None = None) -> None:
        cursor = 0
        if keep is not None:
            found = model.index_of(keep)
            if found is None and model.threaded:
                wanted = int(keep)
                head = next((t.ids[0] for t in model.heads.values() if wanted in t.ids), None)
                found = None if head is None else model.index_of(str(head))
            cursor = found or 0
        self.message_list.show(model, cursor)
        if keep is None or (self.reading is not None and model.index_of(self.reading.id) is None):
            self._show_body("" if len(model) else "(no messages)")
            self.reading = None

    def show_rows(self, rows: list[MessageRow]) -> None:
        self.show_model(ListModel.of_rows(rows))

    def _show_body(self, markup: str) -> None:
        self.query_one("#body", Static).update(markup)

    def selected(self) -> MessageRow | None:
        return self.message_list.selected_row()

    def _replace_row(self, row: MessageRow) -> None:
        index = self._index_of(row.id)
        if index is not None:
            self.model.replace(index, row)
            self.message_list.refresh()

    def _index_of(self, message_id: str) -> int | None:
        lst = self.message_list
        if 0 <= lst.cursor < len(lst.model) and lst.model.entries[lst.cursor] == int(message_id):
            return lst.cursor
        return lst.model.index_of(message_id)

    def _drop_row(self, message_id: str) -> None:
        index = self._index_of(message_id)
        if index is not None:
            self.model.remove(index)
            self.message_list.changed()
        if self.reading is not None and self.reading.id == message_id:
            self._show_body("")
            self.reading = None

    @on(MessageList.Selected, "#messages")
    def _open(self, event: MessageList.Selected) -> None:
        row = self.selected()
        if row is None:
            return
        try:
            shown = self.view.read(row.id)
        except MailbagError as exc:
            self.status(exc.message)
            return
        self._show_body(reader_markup(shown))
        self.query_one("#reader", VerticalScroll).scroll_home(animate=False)
        self.reading = row
        if row.unread:
            seen = MessageRow(
                row.id,
                row.date,
                row.sender,
                row.subject,
                row.flags | {"\\Seen"},
                row.has_attachments,
                row.size,
            )
            self._replace_row(seen)
            self.reading = seen
            if self.current is not None and self.searching is None:
                self._count(*self.current, 0, -1)
            else:
                self.refresh_folders()

    # --- actions ---------------------------------------------------------------------

    def action_cursor_down(self) -> None:
        self.message_list.action_cursor_down()

    def action_cursor_up(self) -> None:
        self.message_list.action_cursor_up()

    def action_toggle_threads(self) -> None:
        """Conversations on or off for the open folder (and its search results); the
        choice is remembered for that folder, across folders and restarts."""
        if self.current is None:
            self.status("open a folder first")
            return
        self.threaded = not self.threaded
        try:
            self.ui_state.set_threaded(*self.current, self.threaded)
        except MailbagError as exc:
            self.status(
                f"{exc.message} (conversations stay {'on' if self.threaded else 'off'} "
                "until the app closes)"
            )
        if self.searching is not None:
            self._show_search(self.searching)
            return
        selected = self.selected()
        self.open_folder(*self.current, keep=selected.id if selected is not None else None)
        if not self.threaded:
            self.status("one line per message")

    def action_attachments(self) -> None:
        row = self.reading or self.selected()
        if row is None:
            return
        try:
            found = self.view.read(row.id, mark_seen=False).attachments
        except MailbagError as exc:
            self.status(exc.message)
            return
        if not found:
            self.status("this message has no attachments")
            return
        self.push_screen(AttachmentsScreen(self.view, row.id, found))

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def _flag(self, flag: str) -> None:
        acting = self._acting_on()
        if acting is None:
            return
        row, thread = acting
        if thread is not None:
            self._flag_conversation(thread, flag)
            return
        try:
            new = self.view.toggle_flag(row.id, flag)
        except MailbagError as exc:
            self.status(exc.message)
            return
        self._replace_row(new)
        if new.unread != row.unread:
            if self.current is not None and self.searching is None:
                self._count(*self.current, 0, 1 if new.unread else -1)
            else:
                self.refresh_folders()

    def _flag_conversation(self, thread: ThreadSummary, flag: str) -> None:
        """A folded conversation is one line, so `u`/`s` take all of it: when any of its
        messages lacks the flag, all get it; else it is taken from all."""
        lst = self.message_list
        index = lst.cursor
        try:
            before = self.view.rows_by_id(list(thread.ids))
            on = any(flag not in r.flags for r in before)
            after = self.view.set_flag([r.id for r in before], flag, on)
        except MailbagError as exc:
            self.status(exc.message)
            self.refresh_folders()  # some may have changed before the error
            return
        self.model.replace_conversation(index, after)
        lst.refresh()
        unread = sum(r.unread for r in after) - sum(r.unread for r in before)
        if unread:
            if self.current is not None and self.searching is None:
                self._count(*self.current, 0, unread)
            else:
                self.refresh_folders()
        done = _FLAG_WORDS[flag][0 if on else 1]
        self.status(
            f"{len(after)} messages (the whole conversation) {done} "
            "(the next sync applies it on the server)"
        )

    def action_toggle_flagged(self) -> None:
        self._flag("\\Flagged")

    def action_toggle_seen(self) -> None:
        self._flag("\\Seen")

    def _acting_on(self) -> tuple[MessageRow, ThreadSummary | None] | None:
        """The message under the cursor, and its conversation when that is folded: a
        folded conversation is one line, so `m` and `d` take all of it."""
        row = self.selected()
        if row is None:
            return None
        lst = self.message_list
        thread = lst.model.thread_at(lst.cursor)
        if thread is not None and lst.model.is_expanded(lst.cursor):
            thread = None
        return row, thread

    def action_delete(self) -> None:
        acting = self._acting_on()
        if acting is None:
            return
        row, thread = acting
        if thread is None:
            self._delete(row, None)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(row, thread)
            else:
                self.status("nothing deleted")

        question = f"Delete all {thread.size} messages of this conversation?"
        self.push_screen(ConfirmPrompt(question, f"Delete {thread.size}"), answered)

    def _delete(self, row: MessageRow, thread: ThreadSummary | None) -> None:
        ids = [str(i) for i in thread.ids] if thread is not None else [row.id]
        try:
            trash = self.view.delete(*ids)
        except MailbagError as exc:
            self.status(exc.message)
            self.refresh_folders()  # some may have gone before the error
            return
        self._gone(row, thread, trash)
        what = f"{len(ids)} messages (the whole conversation)" if thread is not None else ""
        where = "deleted for good" if trash is None else f"moved to {trash}"
        self.status(f"{what + ' ' if what else ''}{where} (the next sync applies it on the server)")

    def action_move(self) -> None:
        acting = self._acting_on()
        if acting is None or self.current is None:
            return
        row, thread = acting
        account, here = self.current
        choices = [f for f in self.view.folder_names(account) if f != here]
        ids = [str(i) for i in thread.ids] if thread is not None else [row.id]

        def done(target: str | None) -> None:
            if target is None:
                return
            if thread is None:
                move(target)
                return
            question = f"Move all {thread.size} messages of this conversation to {target}?"
            self.push_screen(
                ConfirmPrompt(question, f"Move {thread.size}"),
                lambda yes: move(target) if yes else self.status("nothing moved"),
            )

        def move(target: str) -> None:
            try:
                self.view.move(target, *ids)
            except MailbagError as exc:
                self.status(exc.message)
                self.refresh_folders()
                return
            self._gone(row, thread, target)
            what = f"{len(ids)} messages (the whole conversation) " if thread is not None else ""
            self.status(f"{what}moved to {target} (the next sync applies it on the server)")

        self.push_screen(FolderPicker(choices), done)

    def _gone(self, row: MessageRow, thread: ThreadSummary | None, target: str | None) -> None:
        """The message (or folded conversation) left this folder for `target`."""
        if thread is None:
            self._drop_row(row.id)
            total, unread = 1, 1 if row.unread else 0
        else:
            index = self._index_of(row.id)
            if index is not None:
                self.model.remove_conversation(index)
                self.message_list.changed()
            if self.reading is not None and int(self.reading.id) in thread.ids:
                self._show_body("")
                self.reading = None
            total, unread = thread.size, thread.unread
        if self.current is None or self.searching is not None:
            self.refresh_folders()
            return
        account, here = self.current
        self._count(account, here, -total, -unread)
        if target is not None:
            self._count(account, target, total, unread)

    def action_search(self) -> None:
        def done(query: str | None) -> None:
            if query:
                self._show_search(query)

        self.push_screen(SearchPrompt(), done)

    def _show_search(self, query: str) -> None:
        """The matches at once, one line each; by conversation (worked out in a worker)
        when the open folder shows conversations."""
        try:
            rows = self.view.search(query)
        except MailbagError as exc:
            self.status(exc.message)
            return
        self.searching = query
        self.show_rows(rows)
        self.sub_title = f"search: {query}"
        if self.threaded and rows:
            self.status(f"{len(rows)} messages match; grouping conversations ...; Esc goes back")
            self._group_search(query)
        else:
            self.status(f"{len(rows)} messages match; Esc goes back")

    @work(thread=True, exclusive=True, group="threads")
    def _group_search(self, query: str) -> None:
        try:
            model = self.view.search_threads(query)
        except MailbagError as exc:
            self.call_from_thread(self.status, exc.message)
            return
        self.call_from_thread(self._search_grouped, query, model)

    def _search_grouped(self, query: str, model: ListModel) -> None:
        if self.searching != query or not self.threaded:
            return  # another search, or back to the folder, meanwhile
        selected = self.selected()
        self.show_model(model, keep=selected.id if selected is not None else None)
        matched = len(model.matches or ())
        self.status(
            f"{matched} messages match, in {len(model)} conversations (the rest of each "
            "conversation dimmed); Esc goes back"
        )

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

    def _selected_account(self) -> str | None:
        """The account of the folder under the tree's cursor, else the open folder's,
        else the only account."""
        node = self.query_one("#folders", Tree).cursor_node
        while node is not None and node.data is None and node.children:
            node = node.children[0]  # an account's own node: its first folder
        if node is not None and node.data is not None:
            return str(node.data.account)
        if self.current is not None:
            return self.current[0]
        names = [a.name for a in self.view.accounts()]
        return names[0] if len(names) == 1 else None

    def action_edit_account(self) -> None:
        from mailbag.errors import MailbagError

        try:
            accounts = {a.name: a for a in self.view.accounts()}
        except MailbagError as exc:
            self.status(exc.message)
            return
        name = self._selected_account()
        if name is None or name not in accounts:
            self.status("select a folder of the account to edit first")
            return

        def done(saved: str | None) -> None:
            if saved:
                self.status(f"account {saved} saved; syncing ...")
                self.action_sync()

        self.push_screen(AccountDialog(self.view, accounts[name]), done)

    # compose, reply, reply all, forward: mailbag.tui.compose
    def action_compose(self) -> None:
        open_compose(self, "new")

    def action_reply(self) -> None:
        open_compose(self, "reply")

    def action_reply_all(self) -> None:
        open_compose(self, "reply-all")

    def action_forward(self) -> None:
        open_compose(self, "forward")

    def action_forward_attached(self) -> None:
        open_compose(self, "forward-attached")

    def action_edit_draft(self) -> None:
        open_compose(self, "draft")

    def action_outbox(self) -> None:
        open_outbox(self)

    def action_sync(self) -> None:
        self.status("syncing ...", keep=False)
        self._sync()

    @work(thread=True, exclusive=True, group="sync")
    def _sync(self) -> None:
        # the outbox first: what waited offline goes out, and the Sent copies come down
        lines = Outgoing(self.view.paths).flush(wait=5, quiet_if_busy=True)
        lines += self.view.sync(lambda note: self.call_from_thread(self.status, note, keep=False))
        # counted here, not on the UI thread: one scan of the index (~55 ms at 200,000)
        self.call_from_thread(self._synced, lines, self.view.folders())

    def _synced(self, lines: list[str], rows: list[FolderRow] | None = None) -> None:
        """After a sync or a send: status line, folder counts (`rows` when a worker
        counted them), the open list redrawn."""
        if lines:
            self.status("; ".join(lines))
        self.refresh_folders(select_first=self.current is None, rows=rows)
        if self.current is not None and self.searching is None:
            selected = self.selected()
            self.open_folder(*self.current, keep=selected.id if selected is not None else None)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Get mail", "sync every account now", self.action_sync)
        yield SystemCommand("Search", "search all mail", self.action_search)
        yield SystemCommand(
            "Messages", "the status bar's news of this session, whole (M)", self.action_messages
        )
        yield SystemCommand("Compose", "write a new message (c)", self.action_compose)
        yield SystemCommand("Reply", "reply to the highlighted message (r)", self.action_reply)
        yield SystemCommand("Reply all", "reply to everyone on it (a)", self.action_reply_all)
        yield SystemCommand("Forward", "forward the highlighted message (f)", self.action_forward)
        yield SystemCommand(
            "Forward as attachment",
            "send the highlighted message on unchanged, attached (F)",
            self.action_forward_attached,
        )
        yield SystemCommand(
            "Edit draft", "continue the highlighted draft (e)", self.action_edit_draft
        )
        yield SystemCommand("Add account", "find settings, test, save", self.action_add_account)
        yield SystemCommand(
            "Edit account", "change the selected folder's account (E)", self.action_edit_account
        )
        yield SystemCommand(
            "Threads on/off",
            "group this folder by conversation (remembered)",
            self.action_toggle_threads,
        )
        yield SystemCommand(
            "Attachments", "list, open or save the message's attachments", self.action_attachments
        )
        yield SystemCommand("Keys", "every key of the client", self.action_help)


_FLAG_WORDS = {"\\Seen": ("marked read", "marked unread"), "\\Flagged": ("flagged", "unflagged")}

_MAIN_ACTIONS = frozenset(
    b.action for b in MailbagApp.BINDINGS if isinstance(b, Binding) and b.action != "leave_search"
)


def reader_markup(shown: Rendered) -> str:
    """The reading pane: headers, attachments, notes and body, the mail's own text
    escaped (a subject `[PATCH v2] fix` shows as sent, not as a style tag)."""
    head = "\n".join(f"[b]{name}:[/b] {escape_markup(value)}" for name, value in shown.headers)
    parts = [head]
    if shown.attachments:
        parts.append("[b]Attachments[/b] (v: open or save)")
        parts += [f"  {escape_markup(a.label)}" for a in shown.attachments]
    parts += [f"[yellow]note:[/] {escape_markup(note)}" for note in shown.notes]
    parts.append("")
    parts.append(escape_markup(shown.body))
    return "\n".join(parts)


def run_tui(paths: Paths) -> int:
    app = MailbagApp(paths)
    try:
        app.run()
    finally:
        app.view.cleanup()  # the attachment copies made for viewing
    return 0
