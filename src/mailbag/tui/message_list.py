"""The message list widget: draws only the lines on screen (Textual's line API).

A folder of 200,000 messages is a `ListModel` of 200,000 small entries; this
widget asks it for the 30-odd rows it shows, so opening and scrolling cost the
same for any folder size. Conversations fold and unfold in place (Left/Right,
Space), without reloading the folder.
"""

from __future__ import annotations

from typing import ClassVar

from rich.cells import set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from mailbag.tui.view import ListModel, MessageRow

COLUMNS = (("", 4), ("date", 10), ("from", 24), ("subject", 0))
FOLD_COLUMN = 5 + 11 + 25  # where a conversation's ▸/▾ is drawn


def header_line() -> str:
    return " ".join(set_cell_size(name, width) if width else name for name, width in COLUMNS)


class MessageList(ScrollView, can_focus=True):
    """Rows of `ListModel`, a cursor, and fold/unfold of conversations."""

    DEFAULT_CSS = """
    MessageList { overflow-x: hidden; background: $surface; }
    MessageList > .message-list--cursor {
        background: $block-cursor-background; color: $block-cursor-foreground; text-style: bold;
    }
    MessageList:blur > .message-list--cursor {
        background: $block-cursor-blurred-background; text-style: none;
    }
    MessageList > .message-list--unread { text-style: bold; }
    MessageList > .message-list--thread { color: $text-accent; }
    MessageList > .message-list--context { color: $text-disabled; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "message-list--cursor",
        "message-list--unread",
        "message-list--thread",
        "message-list--context",
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "up", show=False),
        Binding("down,j", "cursor_down", "down", show=False),
        Binding("pageup", "page_up", show=False),
        Binding("pagedown", "page_down", show=False),
        Binding("home", "first", show=False),
        Binding("end", "last", show=False),
        Binding("enter", "select", "open", show=False),
        Binding("right", "expand", "unfold", show=False),
        Binding("left", "collapse", "fold", show=False),
        Binding("space", "toggle_thread", "fold/unfold", show=False),
    ]

    class Highlighted(Message):
        """The cursor moved to line `index`."""

        def __init__(self, message_list: MessageList, index: int) -> None:
            super().__init__()
            self.message_list = message_list
            self.index = index

        @property
        def control(self) -> MessageList:
            return self.message_list

    class Selected(Highlighted):
        """Enter or a click on line `index`: open it."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = ListModel([], lambda ids: [])
        self.cursor = 0

    # --- the model ---------------------------------------------------------------------

    def show(self, model: ListModel, cursor: int = 0) -> None:
        self.model = model
        self.cursor = max(0, min(cursor, len(model) - 1))
        self._resized()
        self.scroll_to(y=max(0, self.cursor - self.size.height // 2), animate=False)
        self.refresh()
        if len(model):
            self.post_message(self.Highlighted(self, self.cursor))

    def _resized(self) -> None:
        self.virtual_size = Size(max(1, self.size.width), len(self.model))

    def changed(self) -> None:
        """The model changed in place (a flag, a removal, a fold)."""
        self.cursor = max(0, min(self.cursor, len(self.model) - 1))
        self._resized()
        self._keep_visible()
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        self._resized()

    # --- drawing -------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = int(self.scroll_offset.y) + y
        base = self.rich_style
        if index >= len(self.model) or width <= 0:
            return Strip.blank(width, base)
        model = self.model
        row = model.row(index)
        thread = model.thread_at(index)
        style = base
        unread = row.unread
        marks = row.marks
        subject = row.subject
        context = False  # a search result's conversation mate that did not match: dimmed
        if thread is not None:
            expanded = model.is_expanded(index)
            new = f", {thread.unread} new" if thread.unread else ""
            if model.matches is not None:
                hits = sum(1 for i in thread.ids if i in model.matches)
                new += f", {hits} matching"
                context = expanded and model.is_context(index)
            subject = f"{'▾' if expanded else '▸'} [{thread.size}{new}] {subject}"
            if not expanded and thread.unread:
                unread = True
                marks = "N" + marks[1:]
        elif model.is_child(index):
            subject = "   └ " + subject
            context = model.is_context(index)
        elif model.threaded:
            subject = "  " + subject
        if unread:
            style = style + self.get_component_rich_style("message-list--unread", partial=True)
        if thread is not None:
            style = style + self.get_component_rich_style("message-list--thread", partial=True)
        if context:
            # the full style's color: its partial one keeps the alpha of $text-disabled,
            # which Rich cannot draw (the line would stay as bright as a match)
            dim = self.get_component_rich_style("message-list--context").color
            style = style + Style(color=dim)
        if index == self.cursor:
            style = style + self.get_component_rich_style("message-list--cursor")
        # one segment per column: each keeps its place however the line is exported
        cells = (
            set_cell_size(marks, 5),
            set_cell_size(row.date, 11),
            set_cell_size(row.sender, 25),
        )
        segments = [Segment(text, style) for text in cells]
        segments.append(Segment(subject, style))
        return Strip(segments).adjust_cell_length(width, style)

    # --- cursor ----------------------------------------------------------------------------

    def selected_row(self) -> MessageRow | None:
        if not len(self.model) or not 0 <= self.cursor < len(self.model):
            return None
        return self.model.row(self.cursor)

    def move_to(self, index: int) -> None:
        if not len(self.model):
            return
        index = max(0, min(index, len(self.model) - 1))
        if index == self.cursor:
            return
        old = self.cursor
        self.cursor = index
        self._keep_visible()
        self._refresh_line(old)
        self._refresh_line(index)
        self.post_message(self.Highlighted(self, index))

    def _refresh_line(self, index: int) -> None:
        y = index - int(self.scroll_offset.y)
        if 0 <= y < self.size.height:
            self.refresh_line(y)

    def _keep_visible(self) -> None:
        height = self.scrollable_content_region.height
        top = int(self.scroll_offset.y)
        if height <= 0:
            return
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)

    def action_cursor_up(self) -> None:
        self.move_to(self.cursor - 1)

    def action_cursor_down(self) -> None:
        self.move_to(self.cursor + 1)

    def action_page_up(self) -> None:
        self.move_to(self.cursor - max(1, self.scrollable_content_region.height - 1))

    def action_page_down(self) -> None:
        self.move_to(self.cursor + max(1, self.scrollable_content_region.height - 1))

    def action_first(self) -> None:
        self.move_to(0)

    def action_last(self) -> None:
        self.move_to(len(self.model) - 1)

    def action_select(self) -> None:
        if len(self.model):
            self.post_message(self.Selected(self, self.cursor))

    # --- conversations ---------------------------------------------------------------------

    def action_expand(self) -> None:
        if len(self.model):
            self.model.expand(self.model.head_of(self.cursor))
            self.changed()

    def action_collapse(self) -> None:
        if len(self.model):
            head = self.model.collapse(self.cursor)
            self.cursor = head
            self.changed()
            self.post_message(self.Highlighted(self, head))

    def action_toggle_thread(self) -> None:
        if len(self.model):
            head = self.model.toggle(self.cursor)
            moved = head != self.cursor
            self.cursor = head
            self.changed()
            if moved:
                self.post_message(self.Highlighted(self, head))

    # --- mouse ---------------------------------------------------------------------------------

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        index = int(self.scroll_offset.y) + offset.y
        if not 0 <= index < len(self.model):
            return
        self.move_to(index)
        if self.model.thread_at(index) is not None and FOLD_COLUMN <= offset.x < FOLD_COLUMN + 2:
            self.action_toggle_thread()  # a click on ▸/▾ folds or unfolds
        else:
            self.post_message(self.Selected(self, index))


__all__ = ["COLUMNS", "MessageList", "header_line"]
