"""Asking what to do with a message written in the editor (the editor itself:
`mailbag.message.editor`)."""

from __future__ import annotations

import sys
from typing import Literal

from mailbag.cli.context import Context
from mailbag.message.editor import FALLBACK_EDITORS, edit_text, editor_command, keep_text

__all__ = [
    "FALLBACK_EDITORS",
    "Action",
    "choose_action",
    "edit_text",
    "editor_command",
    "keep_text",
]

Action = Literal["send", "draft", "edit", "abort"]


def choose_action(ctx: Context, *, allow_send: bool, allow_draft: bool = True) -> Action:
    """Ask: send, draft, edit or abort. Reads stdin (a pipe works too).

    At end of input the safe choice is taken: a draft, or (when a draft is not
    possible) "abort", which the caller turns into keeping the text in a file.
    """
    options = []
    if allow_send:
        options.append("[s]end")
    if allow_draft:
        options.append("save as [d]raft")
    options += ["[e]dit again", "[a]bort"]
    prompt = ", ".join(options) + "? "
    for _ in range(10):
        print(prompt, end="", file=ctx.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        answer = line.strip().lower()[:1]
        if answer == "s" and allow_send:
            return "send"
        if answer == "d" and allow_draft:
            return "draft"
        if answer == "e":
            return "edit"
        if answer == "a":
            return "abort"
    return "draft" if allow_draft else "abort"
