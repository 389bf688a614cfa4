"""The search language, parsed into SQL with parameters; and conversations.

    words "a phrase" from:alice to:bob cc:x subject:report body:budget
    attachment:report.pdf folder:INBOX account:work is:unread|read|flagged|
    unflagged|answered|unanswered|draft has:attachment before:2026-02
    after:2026-01-15 date:2026-01..2026-03 larger:1M smaller:20k
    AND OR NOT ( ) and -term (NOT); adjacent terms are ANDed; NOT binds
    tighter than AND, AND tighter than OR. A trailing * makes a prefix search.

Text terms become FTS5 MATCH expressions in which every user word is quoted,
so FTS syntax in a query is just text; everything else is a parameterised SQL
condition. User text never becomes SQL or FTS syntax. Dates are read in the
time zone given (the local one by default): `after:` includes the day named,
`before:` excludes it, and `date:` covers whole days/months/years.

Nothing here prints; errors are `UsageError`s with a hint.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailbag.errors import UsageError

if TYPE_CHECKING:
    from mailbag.store.index import Message, Store

__all__ = [
    "And",
    "Cond",
    "Node",
    "Not",
    "Or",
    "Text",
    "compile_query",
    "parse_query",
    "search",
    "thread",
]

MAX_TERMS = 200
MAX_DEPTH = 50

# --- syntax tree ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """A full-text term: words (a phrase when several) in one column or all."""

    text: str
    column: str | None = None
    prefix: bool = False


@dataclass(frozen=True)
class Cond:
    """A condition on the message row: SQL with `?` parameters, never user text."""

    sql: str
    params: tuple[object, ...] = ()


@dataclass(frozen=True)
class Not:
    node: Node


@dataclass(frozen=True)
class And:
    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    nodes: tuple[Node, ...]


Node = Text | Cond | Not | And | Or
TRUE = Cond("1")
FALSE = Cond("0")

# --- tokens ----------------------------------------------------------------------------------

_COLUMNS = {
    "from": "sender",
    "to": "recipients",
    "cc": "cc",
    "subject": "subject",
    "body": "body",
    "attachment": "attachments",
    "filename": "attachments",
}
_KEYS = set(_COLUMNS) | {"folder", "in", "account", "is", "has", "before", "after", "date"}
_KEYS |= {"larger", "smaller"}


@dataclass(frozen=True)
class _Tok:
    kind: str  # "(", ")", "AND", "OR", "NOT", "term"
    key: str | None = None
    value: str = ""
    quoted: bool = False


def _read_quoted(q: str, i: int) -> tuple[str, int]:
    """From just after an opening quote to after the closing one (or the end)."""
    end = q.find('"', i)
    if end < 0:
        return q[i:], len(q)
    return q[i:end], end + 1


def _tokens(q: str) -> Iterator[_Tok]:
    i, n = 0, len(q)
    while i < n:
        c = q[i]
        if c.isspace():
            i += 1
        elif c in "()":
            yield _Tok(c)
            i += 1
        elif c == "-" and i + 1 < n and not q[i + 1].isspace() and q[i + 1] not in "-)":
            yield _Tok("NOT")
            i += 1
        elif c == '"':
            text, i = _read_quoted(q, i + 1)
            yield _Tok("term", None, text, True)
        else:
            start = i
            while i < n and not q[i].isspace() and q[i] not in '()"':
                i += 1
            word = q[start:i]
            if word in ("AND", "OR", "NOT"):
                yield _Tok(word)
                continue
            key, sep, value = word.partition(":")
            if sep and key.lower() in _KEYS:
                if not value and i < n and q[i] == '"':
                    text, i = _read_quoted(q, i + 1)
                    yield _Tok("term", key.lower(), text, True)
                else:
                    yield _Tok("term", key.lower(), value)
            else:
                yield _Tok("term", None, word)


# --- parser --------------------------------------------------------------------------------


class _Parser:
    def __init__(self, query: str, tz: dt.tzinfo | None) -> None:
        self.toks = list(_tokens(query))
        self.pos = 0
        self.terms = 0
        self.tz = tz

    def peek(self) -> _Tok | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def parse(self) -> Node:
        if not self.toks:
            raise UsageError("the search query is empty", hint='try `mailbag search "word"`')
        node = self.or_expr(0)
        if self.peek() is not None:
            raise UsageError(
                "unbalanced parentheses in the search query",
                hint="every ( needs a matching )",
            )
        return node

    def or_expr(self, depth: int) -> Node:
        nodes = [self.and_expr(depth)]
        while (tok := self.peek()) is not None and tok.kind == "OR":
            self.take()
            nodes.append(self.and_expr(depth))
        if TRUE in nodes:
            return TRUE
        return nodes[0] if len(nodes) == 1 else Or(tuple(nodes))

    def and_expr(self, depth: int) -> Node:
        nodes = [self.unary(depth)]
        while (tok := self.peek()) is not None and tok.kind not in ("OR", ")"):
            if tok.kind == "AND":
                self.take()
            nodes.append(self.unary(depth))
        nodes = [n for n in nodes if n != TRUE] or [TRUE]
        return nodes[0] if len(nodes) == 1 else And(tuple(nodes))

    def unary(self, depth: int) -> Node:
        tok = self.peek()
        if tok is None:
            raise UsageError(
                "the search query ends too early", hint="AND, OR and NOT need a term after them"
            )
        if tok.kind == "NOT":
            self.take()
            node = self.unary(depth)
            return FALSE if node == TRUE else Not(node)
        return self.primary(depth)

    def primary(self, depth: int) -> Node:
        tok = self.take()
        if tok.kind == "(":
            if depth >= MAX_DEPTH:
                raise UsageError("the search query is nested too deeply")
            node = self.or_expr(depth + 1)
            close = self.peek()
            if close is None or close.kind != ")":
                raise UsageError(
                    "unbalanced parentheses in the search query",
                    hint="every ( needs a matching )",
                )
            self.take()
            return node
        if tok.kind != "term":
            raise UsageError(
                f"unexpected {tok.kind!r} in the search query",
                hint="put a term between operators, or quote the word",
            )
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise UsageError(f"the search query has more than {MAX_TERMS} terms")
        return _term(tok, self.tz)


def _text_node(value: str, column: str | None, quoted: bool) -> Node:
    prefix = not quoted and value.endswith("*")
    text = value.rstrip("*") if prefix else value
    if not re.search(r"\w", text):
        return TRUE  # nothing the tokenizer would index: no constraint
    return Text(text, column, prefix)


_FLAG_TESTS = {
    "unread": ("\\Seen", False),
    "read": ("\\Seen", True),
    "seen": ("\\Seen", True),
    "unseen": ("\\Seen", False),
    "flagged": ("\\Flagged", True),
    "starred": ("\\Flagged", True),
    "unflagged": ("\\Flagged", False),
    "answered": ("\\Answered", True),
    "replied": ("\\Answered", True),
    "unanswered": ("\\Answered", False),
    "draft": ("\\Draft", True),
}
_WHEN = "COALESCE(m.date, m.internal_date)"


def _term(tok: _Tok, tz: dt.tzinfo | None) -> Node:
    key, value = tok.key, tok.value
    if key is None:
        return _text_node(value, None, tok.quoted)
    if key in _COLUMNS:
        return _text_node(value, _COLUMNS[key], tok.quoted)
    if not value:
        raise UsageError(f"{key}: needs a value", hint=f"for example {key}:{_EXAMPLES[key]}")
    if key in ("folder", "in"):
        if "*" in value or "?" in value:
            return Cond("f.name GLOB ?", (value,))
        if value.upper() == "INBOX":
            return Cond("upper(f.name) = 'INBOX'")
        return Cond("f.name = ?", (value,))
    if key == "account":
        return Cond("a.name = ?", (value,))
    if key == "is":
        test = _FLAG_TESTS.get(value.lower())
        if test is None:
            raise UsageError(
                f"unknown is:{value}",
                hint="use is:unread, is:read, is:flagged, is:unflagged, is:answered, is:draft",
            )
        flag, present = test
        op = ">" if present else "="
        return Cond(f"instr(' ' || m.flags || ' ', ?) {op} 0", (f" {flag} ",))
    if key == "has":
        if value.lower() in ("attachment", "attachments", "attach"):
            return Cond("m.has_attachments = 1")
        raise UsageError(f"unknown has:{value}", hint="use has:attachment")
    if key in ("larger", "smaller"):
        size = _size(value)
        return Cond(f"m.size {'>' if key == 'larger' else '<'} ?", (size,))
    if key == "before":
        return Cond(f"{_WHEN} < ?", (_date_range(value, tz)[0],))
    if key == "after":
        return Cond(f"{_WHEN} >= ?", (_date_range(value, tz)[0],))
    # date:
    first, sep, last = value.partition("..")
    conds = []
    if sep:
        if first:
            conds.append(Cond(f"{_WHEN} >= ?", (_date_range(first, tz)[0],)))
        if last:
            conds.append(Cond(f"{_WHEN} < ?", (_date_range(last, tz)[1],)))
        if not conds:
            raise UsageError("date:.. needs at least one end", hint="for example date:2026-01..")
    else:
        start, end = _date_range(value, tz)
        conds = [Cond(f"{_WHEN} >= ?", (start,)), Cond(f"{_WHEN} < ?", (end,))]
    return conds[0] if len(conds) == 1 else And(tuple(conds))


_EXAMPLES = {
    "folder": "INBOX",
    "in": "INBOX",
    "account": "work",
    "is": "unread",
    "has": "attachment",
    "before": "2026-02-01",
    "after": "2026-01",
    "date": "2026-01..2026-03",
    "larger": "1M",
    "smaller": "20k",
}


def _size(value: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmMgG]?)[bB]?", value)
    if m is None:
        raise UsageError(f"cannot read the size {value!r}", hint="for example larger:500k or 2M")
    factor = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2).lower()]
    return int(float(m.group(1)) * factor)


def _date_range(value: str, tz: dt.tzinfo | None) -> tuple[float, float]:
    """[start, end) in epoch seconds of the day, month or year named."""
    m = re.fullmatch(r"(\d{4})(?:[-/](\d{1,2})(?:[-/](\d{1,2}))?)?", value.strip())
    if m is None:
        raise UsageError(f"cannot read the date {value!r}", hint="use YYYY, YYYY-MM or YYYY-MM-DD")
    year = int(m.group(1))
    month = int(m.group(2)) if m.group(2) else None
    day = int(m.group(3)) if m.group(3) else None
    try:
        if month is None:
            start = dt.datetime(year, 1, 1)
            end = dt.datetime(year + 1, 1, 1)
        elif day is None:
            start = dt.datetime(year, month, 1)
            end = dt.datetime(year + (month == 12), month % 12 + 1, 1)
        else:
            start = dt.datetime(year, month, day)
            end = start + dt.timedelta(days=1)
    except ValueError as exc:
        raise UsageError(f"no such date {value!r}: {exc}") from exc
    tzinfo = tz if tz is not None else dt.datetime.now().astimezone().tzinfo
    return start.replace(tzinfo=tzinfo).timestamp(), end.replace(tzinfo=tzinfo).timestamp()


def parse_query(query: str, *, tz: dt.tzinfo | None = None) -> Node:
    """The syntax tree of a query (UsageError with a hint when it cannot be read)."""
    return _Parser(query, tz).parse()


# --- compiling -----------------------------------------------------------------------------


def _fts_only(node: Node) -> bool:
    if isinstance(node, Text):
        return True
    if isinstance(node, And | Or):
        return all(_fts_only(n) for n in node.nodes)
    return False


def _fts_string(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _fts_expr(node: Node) -> str:
    if isinstance(node, Text):
        expr = _fts_string(node.text) + (" *" if node.prefix else "")
        return f"{node.column} : {expr}" if node.column else expr
    if isinstance(node, And | Or):
        op = " AND " if isinstance(node, And) else " OR "
        return "(" + op.join(_fts_expr(n) for n in node.nodes) + ")"
    raise TypeError(node)  # pragma: no cover - guarded by _fts_only


# The unary + keeps SQLite from driving the query from the list of matches: it
# walks `messages_by_when` newest first instead and stops at the LIMIT, which
# makes a common word as fast as a rare one. For a rare word the list of
# matches is the better driver (`drive_from_matches`): `search` decides.
_MATCH = "+m.id IN (SELECT rowid FROM fulltext WHERE fulltext MATCH ?)"
_MATCH_DRIVING = "m.id IN (SELECT rowid FROM fulltext WHERE fulltext MATCH ?)"


def compile_query(node: Node, *, drive_from_matches: bool = False) -> tuple[str, list[object]]:
    """A WHERE expression over `messages m`, `folders f`, `accounts a`, and its parameters."""
    if _fts_only(node):
        return (_MATCH_DRIVING if drive_from_matches else _MATCH), [_fts_expr(node)]
    if isinstance(node, Cond):
        return f"({node.sql})", list(node.params)
    if isinstance(node, Not):
        sql, params = compile_query(node.node)
        return f"NOT {sql}", params
    assert isinstance(node, And | Or)
    parts: list[tuple[str, list[object]]] = []
    if isinstance(node, And):
        # all text terms of an AND go into one MATCH: one FTS lookup, not several
        text = [n for n in node.nodes if _fts_only(n)]
        rest = [n for n in node.nodes if not _fts_only(n)]
        if text:
            group = text[0] if len(text) == 1 else And(tuple(text))
            parts.append(compile_query(group, drive_from_matches=drive_from_matches))
        parts.extend(compile_query(n) for n in rest)
        op = " AND "
    else:
        parts = [compile_query(n) for n in node.nodes]
        op = " OR "
    sql = "(" + op.join(p[0] for p in parts) + ")"
    return sql, [x for p in parts for x in p[1]]


def required_match(node: Node) -> str | None:
    """The FTS expression every result must match, when there is one."""
    if _fts_only(node):
        return _fts_expr(node)
    if isinstance(node, And):
        text = [n for n in node.nodes if _fts_only(n)]
        if text:
            return _fts_expr(text[0] if len(text) == 1 else And(tuple(text)))
    return None


# fewer matches than this: sort them; more: walk the date index and stop early
FEW_MATCHES = 500


# --- running -------------------------------------------------------------------------------


def search(
    store: Store,
    query: str,
    *,
    account: str | None = None,
    limit: int | None = None,
    tz: dt.tzinfo | None = None,
) -> list[Message]:
    """Messages matching `query`, newest first."""
    from mailbag.store import fulltext
    from mailbag.store.index import _MESSAGE_COLUMNS, _MESSAGE_FROM, _message

    tree = parse_query(query, tz=tz)
    if fulltext.needs_rebuild(store.conn):
        fulltext.rebuild(store)
    else:
        fulltext.index_missing(store)  # what was stored with indexing deferred
    few = False
    match = required_match(tree)
    if match is not None:
        probe = store.conn.execute(
            "SELECT count(*) FROM (SELECT rowid FROM fulltext WHERE fulltext MATCH ? LIMIT ?)",
            (match, FEW_MATCHES + 1),
        ).fetchone()[0]
        few = probe <= FEW_MATCHES
    where, params = compile_query(tree, drive_from_matches=few)
    sql = f"SELECT {_MESSAGE_COLUMNS} FROM {_MESSAGE_FROM} WHERE m.gone = 0 AND {where}"  # noqa: S608
    if account is not None:
        sql += " AND a.name = ?"
        params.append(account)
    sql += f" ORDER BY {_WHEN} DESC, m.id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [_message(row) for row in store.conn.execute(sql, params)]


# --- conversations ------------------------------------------------------------------------

_SUBJECT_PREFIX = re.compile(r"^\s*((re|fwd?|aw|wg|sv|vs|tr|rif|antw)\s*(\[\d+\])?\s*:\s*)+", re.I)
_MSGID = re.compile(r"<[^<>\s]{1,500}>")
MAX_THREAD = 500


def base_subject(subject: str) -> str:
    return _SUBJECT_PREFIX.sub("", subject).strip().lower()


def thread(store: Store, message: Message) -> list[Message]:
    """The conversation `message` belongs to, oldest first.

    Follows Message-ID, In-Reply-To and References both ways within the
    account; when the message has no threading headers at all, falls back to
    messages with the same subject (after Re:/Fwd:) that also lack them or
    point to one another.
    """
    from mailbag.store.index import _MESSAGE_COLUMNS, _MESSAGE_FROM, _message

    base = f"SELECT {_MESSAGE_COLUMNS} FROM {_MESSAGE_FROM} WHERE m.gone = 0 AND a.name = ?"  # noqa: S608
    found: dict[int, Message] = {message.id: message}
    ids: set[str] = set()
    todo = [message]
    while todo and len(found) < MAX_THREAD:
        m = todo.pop()
        new_ids = {m.message_id} if m.message_id else set()
        new_ids |= set(_MSGID.findall(f"{m.in_reply_to} {m.references}"))
        new_ids -= ids
        ids |= new_ids
        for mid in new_ids:
            rows = store.conn.execute(
                base + " AND (m.message_id = ? OR m.in_reply_to = ? OR instr(m.refs, ?) > 0)"
                " LIMIT ?",
                (message.account, mid, mid, mid, MAX_THREAD),
            )
            for row in rows:
                other = _message(row)
                if other.id not in found:
                    found[other.id] = other
                    todo.append(other)
    if len(found) == 1 and not (message.in_reply_to or message.references):
        subject = base_subject(message.subject)
        if subject:
            rows = store.conn.execute(
                base + " AND m.subject LIKE ? ESCAPE '\\' LIMIT ?",
                (message.account, "%" + _like_escape(subject), MAX_THREAD * 4),
            )
            for row in rows:
                other = _message(row)
                if base_subject(other.subject) == subject:
                    found.setdefault(other.id, other)
    return sorted(found.values(), key=lambda x: (x.date or x.internal_date or 0.0, x.id))[
        :MAX_THREAD
    ]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
