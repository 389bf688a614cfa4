"""Turn a parsed message into something safe to read.

`render_body` picks the best body (text/plain when present, otherwise HTML
converted to readable text with links as numbered footnotes) and
`sanitize_html` gives HTML for `--html` with nh3: no scripts, event handlers,
forms, styles or remote fetches. Both report the remote resources the HTML
asked for (never fetched) and which of them look like trackers.

Nothing here touches the network or prints. The returned text is *not* yet
terminal-safe: callers pass it through `mailbag.textsafe.clean_terminal`.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlsplit

from mailbag.message.parse import ParsedMessage, Part

__all__ = [
    "RemoteReport",
    "RenderedBody",
    "body_parts",
    "html_to_text",
    "html_words",
    "render_body",
    "sanitize_html",
    "scan_remote",
]

# HTML beyond this many characters is cut before conversion (said in a notice)
MAX_HTML_CHARS = 500_000
MAX_TEXT_CHARS = 5_000_000
WRAP = 78

_REMOTE = re.compile(r"^\s*(https?:|ftp:|//)", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)""", re.IGNORECASE)
# URL shapes used by mailing services to record that a message was opened
_TRACKER_URL = re.compile(
    r"(/open(ed)?[./?]|/track(ing)?[/?.]|/pixel|/beacon|/wf/open|/o\.gif|/t\.gif|/e/o/|"
    r"[?&](utm_[a-z]+|mc_eid|_hsenc|open_id|track(ing)?_?id)=|/trk/|/imp[?/])",
    re.IGNORECASE,
)
_TRACKER_HOSTS = (
    "list-manage.com",
    "mailchimp.com",
    "sendgrid.net",
    "mandrillapp.com",
    "hubspotemail.net",
    "hs-analytics.net",
    "google-analytics.com",
    "doubleclick.net",
    "mailgun.org",
    "sparkpostmail.com",
    "exct.net",
    "mktoresp.com",
    "pardot.com",
    "klaviyo.com",
    "returnpath.net",
    "emltrk.com",
    "mailtrack.io",
    "getnotify.com",
    "bananatag.com",
    "yesware.com",
    "awstrack.me",
)


@dataclass
class RemoteReport:
    """Remote resources an HTML body asked for; none of them was fetched."""

    blocked: list[str] = field(default_factory=list)
    trackers: list[str] = field(default_factory=list)

    def summary(self) -> str | None:
        if not self.blocked:
            return None
        n = len(self.blocked)
        text = f"{n} remote resource{'s' if n != 1 else ''} blocked"
        if self.trackers:
            hosts = sorted({urlsplit(_absolute(u)).hostname or u for u in self.trackers})
            k = len(self.trackers)
            what = "looks like a tracker" if k == 1 else "look like trackers"
            text += f" ({k} {what}: {', '.join(hosts[:5])})"
        return text


def _absolute(url: str) -> str:
    url = url.strip()
    return "https:" + url if url.startswith("//") else url


def _is_tracker_url(url: str) -> bool:
    if _TRACKER_URL.search(url):
        return True
    host = (urlsplit(_absolute(url)).hostname or "").lower()
    return any(host == h or host.endswith("." + h) for h in _TRACKER_HOSTS)


def _tiny(value: str | None) -> bool:
    if value is None:
        return False
    m = re.match(r"\s*(\d+)", value)
    return bool(m) and int(m.group(1)) <= 1 if m else False


def _hidden_style(style: str) -> bool:
    s = style.replace(" ", "").lower()
    return (
        "display:none" in s
        or "visibility:hidden" in s
        or bool(re.search(r"(^|;)(width|height):[01](px)?(;|$)", s))
    )


class _Scanner(HTMLParser):
    """Shared attribute scan: remote resources and trackers."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.remote = RemoteReport()
        self._in_style = False

    def _note(self, url: str, *, tracker: bool = False) -> None:
        if not _REMOTE.match(url):
            return
        url = url.strip()
        self.remote.blocked.append(url)
        if tracker or _is_tracker_url(url):
            self.remote.trackers.append(url)

    def scan_tag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        tiny = (_tiny(a.get("width")) and _tiny(a.get("height"))) or _hidden_style(
            a.get("style", "")
        )
        for key in ("src", "background", "poster", "data", "lowsrc", "dynsrc"):
            if key in a:
                self._note(a[key], tracker=tag == "img" and tiny)
        if "srcset" in a:
            for item in a["srcset"].split(","):
                if item.strip():
                    self._note(item.split()[0])
        if tag == "link" and "href" in a:
            self._note(a["href"])
        if "style" in a:
            self._scan_css(a["style"])

    def _scan_css(self, css: str) -> None:
        for m in _CSS_URL.finditer(css):
            self._note(m.group(1) or m.group(2))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scan_tag(tag, attrs)
        if tag == "style":
            self._in_style = True

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scan_tag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self._scan_css(data)


def scan_remote(html: str) -> RemoteReport:
    scanner = _Scanner()
    scanner.feed(html[:MAX_HTML_CHARS])
    scanner.close()
    return scanner.remote


_BLOCK = {
    "p", "div", "section", "article", "header", "footer", "main", "aside", "nav",
    "center", "address", "figure", "figcaption", "form", "fieldset", "dl", "dt", "dd",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol",
}  # fmt: skip
_SKIP = {"script", "style", "head", "title", "template", "noscript", "svg", "math", "object"}
_VOID = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "wbr"}


class _TextConverter(_Scanner):
    """HTML -> plain text: paragraphs, lists, simple tables, link footnotes."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []  # finished output lines
        self.buf: list[str] = []  # inline text of the current line
        self.pending = 0  # line breaks owed before the next text (2 = blank line)
        self.skip = 0
        self.pre = 0
        self.quote = 0
        self.lists: list[list[int]] = []  # [ordered?, counter]
        self.links: list[str] = []
        self.href_stack: list[str | None] = []
        self.link_text_start: list[int] = []
        self.row: list[str] | None = None
        self.cell: list[str] | None = None

    # -- output helpers
    def _break(self, n: int) -> None:
        self._flush_line()
        if self.lines or self.buf:
            self.pending = max(self.pending, n)

    def _flush_line(self) -> None:
        if self.buf:
            text = "".join(self.buf)
            self.buf = []
            if not self.pre:
                text = text.strip()
            if text:
                self._emit(text)

    def _emit(self, text: str) -> None:
        if self.lines and self.pending:
            self.lines.extend([""] * (self.pending - 1))
        self.pending = 0
        prefix = "> " * self.quote
        if self.pre:
            self.lines.extend(prefix + ln for ln in text.split("\n"))
            return
        indent = "  " * max(0, len(self.lists) - 1) if self.lists else ""
        width = max(20, WRAP - len(prefix) - len(indent))
        wrapped = textwrap.wrap(text, width=width, break_on_hyphens=False) or [""]
        first, *rest = wrapped
        self.lines.append(prefix + indent + first)
        cont = prefix + indent + ("  " if self.lists else "")
        self.lines.extend(cont + r for r in rest)

    def _text(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)
        else:
            self.buf.append(data)

    # -- parser events
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scan_tag(tag, attrs)
        if tag == "style":
            self._in_style = True
        if tag in _SKIP:
            if tag not in _VOID:
                self.skip += 1
            return
        if self.skip:
            return
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "br":
            if self.cell is not None:
                self.cell.append(" ")
            else:
                self._flush_line()
                if self.lines:
                    self.pending = max(self.pending, 1)
        elif tag == "hr":
            self._break(2)
            self._emit("-" * 20)
            self.pending = 2
        elif tag == "pre":
            self._break(2)
            self.pre += 1
        elif tag == "blockquote":
            self._break(2)
            self.quote += 1
        elif tag in ("ul", "ol"):
            self._break(1 if self.lists else 2)
            self.lists.append([1 if tag == "ol" else 0, 0])
        elif tag == "li":
            self._break(1)
            if self.lists:
                ordered, count = self.lists[-1]
                self.lists[-1][1] = count + 1
                self.buf.append(f"{count + 1}. " if ordered else "- ")
            else:
                self.buf.append("- ")
        elif tag == "tr":
            self._flush_line()
            self.row = []
        elif tag in ("td", "th"):
            self.cell = []
        elif tag == "a":
            href = a.get("href", "").strip()
            self.href_stack.append(href or None)
            self.link_text_start.append(
                len("".join(self.cell if self.cell is not None else self.buf))
            )
        elif tag == "img":
            alt = a.get("alt", "").strip()
            if alt:
                self._text(f"[{alt}]")
        elif tag in _BLOCK:
            self._break(2 if tag != "div" else 1)
            if tag in ("h1", "h2", "h3"):
                self.buf.append("#" * int(tag[1]) + " ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False
        if tag in _SKIP:
            if tag not in _VOID and self.skip:
                self.skip -= 1
            return
        if self.skip:
            return
        if tag == "pre":
            self._flush_line()
            self.pre = max(0, self.pre - 1)
            self.pending = 2
        elif tag == "blockquote":
            self._flush_line()
            self.quote = max(0, self.quote - 1)
            self.pending = 2
        elif tag in ("ul", "ol"):
            self._flush_line()
            if self.lists:
                self.lists.pop()
            self.pending = 1 if self.lists else 2
        elif tag in ("td", "th"):
            if self.cell is not None:
                text = re.sub(r"\s+", " ", "".join(self.cell)).strip()
                if self.row is None:
                    self.row = []
                self.row.append(text)
            self.cell = None
        elif tag == "tr":
            if self.cell is not None:
                self.handle_endtag("td")
            if self.row and any(self.row):
                self.pending = max(self.pending, 1) if self.lines else 0
                self._emit_row(" | ".join(self.row))
            self.row = None
        elif tag == "table":
            self._flush_line()
            self.pending = 2
        elif tag == "a":
            href = self.href_stack.pop() if self.href_stack else None
            start = self.link_text_start.pop() if self.link_text_start else 0
            if href and re.match(r"(?i)(https?|mailto|ftp):", href):
                shown = "".join(self.cell if self.cell is not None else self.buf)
                label = shown[start:].strip() if len(shown) >= start else ""
                if label not in (href, href.removeprefix("mailto:")):
                    # the footnote shows the real target, whatever the text claims
                    if href not in self.links:
                        self.links.append(href)
                    self._text(f"[{self.links.index(href) + 1}]")
        elif tag in _BLOCK or tag == "li":
            self._break(2 if tag not in ("div", "li", "dt", "dd") else 1)

    def _emit_row(self, text: str) -> None:
        # rows are not wrapped: a table reads best line by line
        if self.lines and self.pending:
            self.lines.extend([""] * (self.pending - 1))
        self.pending = 0
        self.lines.append("> " * self.quote + text)

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self._scan_css(data)
            return
        if self.skip:
            return
        if self.pre:
            self._text(data)
        else:
            self._text(re.sub(r"\s+", " ", data))

    def result(self) -> str:
        self._flush_line()
        lines = [ln.rstrip() for ln in self.lines]
        out: list[str] = []
        for ln in lines:
            if not ln and (not out or not out[-1]):
                continue
            out.append(ln)
        while out and not out[-1]:
            out.pop()
        text = "\n".join(out)
        if self.links:
            notes = "\n".join(f"[{i}] {u}" for i, u in enumerate(self.links, 1))
            text += "\n\nLinks:\n" + notes
        return text


_DEAD_BLOCKS = re.compile(
    r"<(script|style|head|title|template|noscript|svg)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL
)
_TAG_OR_COMMENT = re.compile(r"<!--.*?-->|<[^>]*>", re.DOTALL)


def html_words(html: str) -> str:
    """The words of an HTML text, without layout: for the search index.

    Regular expressions instead of the HTML parser because indexing runs on
    every message a sync brings: a megabyte of HTML takes ~1.5 s through
    `html.parser` and a few milliseconds here. Display uses `html_to_text`.
    """
    import html as html_module

    text = _DEAD_BLOCKS.sub(" ", html)
    text = _TAG_OR_COMMENT.sub(" ", text)
    return " ".join(html_module.unescape(text).split())


def html_to_text(html: str) -> tuple[str, RemoteReport]:
    """Readable text from HTML, and what remote resources it referred to."""
    conv = _TextConverter()
    conv.feed(html[:MAX_HTML_CHARS])
    conv.close()
    return conv.result(), conv.remote


# ---------------------------------------------------------------------------
# sanitised HTML for --html

_ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd",
    "del", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
    "img", "ins", "kbd", "li", "ol", "p", "pre", "q", "s", "small", "span", "strong",
    "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
    "center", "font", "section", "article", "header", "footer",
}  # fmt: skip
_ALLOWED_ATTRS = {
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height", "title"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align"},
    "ol": {"start"},
    "*": {"dir", "lang"},
}


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    # images may only come from inside the message (cid:) or be inline data;
    # anything else would be fetched when the HTML is opened
    if attr == "src":
        v = value.strip().lower()
        return value if v.startswith("cid:") or v.startswith("data:image/") else None
    return value


def sanitize_html(html: str) -> tuple[str, RemoteReport]:
    """HTML safe to open: no script, handlers, forms, CSS or remote fetches."""
    import nh3  # imported here: only `read --html` needs it

    report = scan_remote(html)
    clean = nh3.clean(
        html[:MAX_HTML_CHARS],
        tags=_ALLOWED_TAGS,
        clean_content_tags={"script", "style", "title", "head", "template", "noscript"},
        attributes=_ALLOWED_ATTRS,
        attribute_filter=_attribute_filter,
        url_schemes={"http", "https", "mailto", "cid", "data"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return clean, report


# ---------------------------------------------------------------------------
# choosing and rendering the body


def _is_inline_text(part: Part) -> bool:
    return part.content_type in ("text/plain", "text/html") and not part.is_attachment


def _best_alternative(part: Part) -> Part | None:
    """In multipart/alternative, text/plain wins when present (as asked)."""
    candidates = [c for c in part.children if not c.is_attachment]
    for want in ("text/plain", "text/html"):
        for child in candidates:
            found = body_parts(child)
            if found and any(p.content_type == want for p in found):
                return child
    return candidates[-1] if candidates else None


def body_parts(part: Part) -> list[Part]:
    """The leaf parts that make up the readable body, in order."""
    if part.content_type == "multipart/alternative" and part.children:
        best = _best_alternative(part)
        return body_parts(best) if best is not None else []
    if part.content_type == "multipart/related" and part.children:
        return body_parts(part.children[0])
    if part.maintype == "multipart" and part.children:
        out: list[Part] = []
        for child in part.children:
            if child.content_type == "message/rfc822":
                continue
            out.extend(body_parts(child))
        return out
    if _is_inline_text(part):
        return [part]
    return []


@dataclass
class RenderedBody:
    text: str
    source: str  # "plain", "html", "mixed" or "none"
    remote: RemoteReport = field(default_factory=RemoteReport)
    notices: list[str] = field(default_factory=list)


def _label(part: Part) -> str:
    return f"part {part.path}" if part.path else "the body"


def render_body(msg: ParsedMessage) -> RenderedBody:
    parts = body_parts(msg.root)
    notices: list[str] = []
    remote = RemoteReport()
    chunks: list[str] = []
    kinds: set[str] = set()
    for part in parts:
        text, notes = msg.text(part)
        notices.extend(notes)
        if part.content_type == "text/html":
            if len(text) > MAX_HTML_CHARS:
                notices.append(f"{_label(part)}: HTML cut at {MAX_HTML_CHARS:,} characters")
            text, rep = html_to_text(text)
            remote.blocked.extend(rep.blocked)
            remote.trackers.extend(rep.trackers)
            kinds.add("html")
        else:
            kinds.add("plain")
        if len(text) > MAX_TEXT_CHARS:
            notices.append(f"{_label(part)}: text cut at {MAX_TEXT_CHARS:,} characters")
            text = text[:MAX_TEXT_CHARS]
        chunks.append(text.replace("\r\n", "\n").rstrip())
    # remote resources in HTML alternatives that were not chosen are still
    # worth reporting: they are what opening the HTML would fetch
    chosen = {id(p) for p in parts}
    for part in msg.walk():
        if part.content_type == "text/html" and not part.is_attachment and id(part) not in chosen:
            html, _ = msg.text(part)
            rep = scan_remote(html)
            remote.blocked.extend(rep.blocked)
            remote.trackers.extend(rep.trackers)
    source = "none" if not kinds else kinds.pop() if len(kinds) == 1 else "mixed"
    return RenderedBody(text="\n\n".join(chunks), source=source, remote=remote, notices=notices)


def html_body(msg: ParsedMessage) -> tuple[str | None, RemoteReport, list[str]]:
    """The sanitised HTML body for `read --html` (None when there is no HTML)."""
    for part in msg.walk():
        if part.content_type == "text/html" and not part.is_attachment:
            text, notes = msg.text(part)
            clean, report = sanitize_html(text)
            return clean, report, notes
    return None, RemoteReport(), []
