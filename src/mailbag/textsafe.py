"""Make untrusted text safe to print on a terminal.

Mail carries attacker-controlled text (subjects, names, bodies, file names).
Terminal escape sequences in it can rewrite the screen or the clipboard, and
bidi overrides can make text read differently than it is, so every string that
reaches a terminal goes through `clean_terminal` first.
"""

from __future__ import annotations

import functools
import re

# C0 controls except TAB/LF/CR, DEL, C1 controls, and the Unicode bidi controls
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"


@functools.cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """Compiled on first use: many runs print nothing (a quiet sync), and start-up
    time counts."""
    unsafe = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_BIDI}]")
    line_breaks = re.compile(r"\r\n|[\r\n\t]")
    # a whole escape sequence (CSI/OSC/...) is dropped, not just its ESC byte
    escape_seq = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")
    return unsafe, line_breaks, escape_seq


def escape_markup(text: str) -> str:
    """Text put inside Textual markup shows as typed: brackets from mail or a server
    (`[PATCH v2] fix`, `[AUTHENTICATIONFAILED] ...`, `[Gmail]/Sent`) are not style tags.
    Every `[` is escaped: Textual takes `[Gmail]` for a tag, and the escape functions of
    rich and textual (which escape only what looks like a lowercase tag) let it through."""
    return text.replace("[", "\\[")


def plain_markup(text: str, *, keep_newlines: bool = False) -> str:
    """`clean_terminal`, then `escape_markup`: outside text for a Textual markup string."""
    return escape_markup(clean_terminal(text, keep_newlines=keep_newlines))


def clean_terminal(text: str, *, keep_newlines: bool = False) -> str:
    """Remove escape sequences, control characters and bidi overrides."""
    unsafe, line_breaks, escape_seq = _patterns()
    text = unsafe.sub("", escape_seq.sub("", text))
    if keep_newlines:
        return text.replace("\r\n", "\n").replace("\r", "\n")
    return line_breaks.sub(" ", text)
