"""Body choice, HTML to text, sanitising, remote resources and trackers."""

from __future__ import annotations

import time

import pytest

from hostile import big_html, corpus
from mailbag.message.parse import parse_message
from mailbag.message.render import html_body, html_to_text, render_body, sanitize_html


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>one</p><p>two</p>", "one\n\ntwo"),
        ("a<br>b", "a\nb"),
        ("<ul><li>x</li><li>y</li></ul>", "- x\n- y"),
        ("<ol><li>x</li><li>y</li></ol>", "1. x\n2. y"),
        ("<ul><li>x<ul><li>in</li></ul></li></ul>", "- x\n  - in"),
        (
            "<table><tr><th>A</th><th>B</th></tr><tr><td>1</td><td>2</td></tr></table>",
            "A | B\n1 | 2",
        ),
        ("<blockquote><p>quoted</p></blockquote>after", "> quoted\n\nafter"),
        ("<pre>  keep\n   spacing</pre>", "  keep\n   spacing"),
        ("<h1>Title</h1><p>text</p>", "# Title\n\ntext"),
        ("<script>alert(1)</script><style>p{}</style>visible", "visible"),
        ("<head><title>t</title></head><body>b</body>", "b"),
        ("a &amp; b &lt;c&gt;", "a & b <c>"),
        ('<img src="cid:x" alt="Chart">', "[Chart]"),
        (
            '<a href="https://real.example/">click here</a>',
            "click here[1]\n\nLinks:\n[1] https://real.example/",
        ),
        # text that claims to be a URL still shows the real target
        (
            '<a href="https://evil.example/">https://bank.example/</a>',
            "https://bank.example/[1]\n\nLinks:\n[1] https://evil.example/",
        ),
        ('<a href="https://same.example/">https://same.example/</a>', "https://same.example/"),
        ('<a href="mailto:a@b.example">a@b.example</a>', "a@b.example"),
        ('<a href="javascript:alert(1)">js</a>', "js"),
        (
            '<a href="https://x.example/">x</a> <a href="https://x.example/">again</a>',
            "x[1] again[1]\n\nLinks:\n[1] https://x.example/",
        ),
        ("<p>unclosed <b>tags <i>everywhere", "unclosed tags everywhere"),
        ("", ""),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html)[0] == text


@pytest.mark.parametrize(
    ("html", "blocked", "trackers"),
    [
        ('<img src="https://cdn.example/a.png">', 1, 0),
        ('<img src="https://t.example/p.gif" width="1" height="1">', 1, 1),
        ('<img src="https://t.example/x.gif" style="display:none">', 1, 1),
        ('<img src="https://x.list-manage.com/track/open.php?u=1">', 1, 1),
        ('<img src="https://x.example/wf/open?upn=1">', 1, 1),
        ('<img src="cid:part1">', 0, 0),
        ('<img src="data:image/png;base64,AAAA">', 0, 0),
        ('<link rel="stylesheet" href="//cdn.example/s.css">', 1, 0),
        ('<div style="background:url(https://cdn.example/bg.png)">x</div>', 1, 0),
        (
            "<style>@import 'https://cdn.example/i.css'; b{background:url(http://c.example/b.png)}</style>",
            2,
            0,
        ),
        ('<iframe src="https://frame.example/"></iframe>', 1, 0),
        ('<img srcset="https://a.example/1.png 1x, https://a.example/2.png 2x">', 2, 0),
        ('<table background="https://bg.example/t.png"><tr><td>x</td></tr></table>', 1, 0),
        ('<video poster="https://v.example/p.jpg"></video>', 1, 0),
        ('<a href="https://link.example/">a link is not fetched</a>', 0, 0),
    ],
)
def test_remote_resources_are_counted(html: str, blocked: int, trackers: int) -> None:
    _, report = html_to_text(html)
    assert (len(report.blocked), len(report.trackers)) == (blocked, trackers)
    _, report2 = sanitize_html(html)
    assert (len(report2.blocked), len(report2.trackers)) == (blocked, trackers)


def test_sanitised_html_has_no_active_or_remote_content() -> None:
    msg = parse_message(corpus()["html-hostile.eml"])
    html, report, _ = html_body(msg)
    assert html is not None
    low = html.lower()
    for bad in (
        "<script", "onload", "onerror", "<form", "<input", "<iframe", "<link", "<meta",
        "<style", "javascript:", "https://cdn.example.net", "list-manage", "<svg", "style=",
    ):  # fmt: skip
        assert bad not in low, bad
    assert "Monthly news" in html
    assert 'href="https://evil.example/phish"' in html  # links stay, visibly
    assert len(report.blocked) == 7
    assert len(report.trackers) == 2
    summary = report.summary()
    assert summary is not None and "7 remote resources blocked" in summary


def test_plain_text_is_preferred_and_html_trackers_still_reported() -> None:
    body = render_body(parse_message(corpus()["html-alternative.eml"]))
    assert body.source == "plain"
    assert body.text == "The plain text version of the order."
    assert len(body.remote.trackers) == 1


def test_html_only_message_is_converted() -> None:
    body = render_body(parse_message(corpus()["html-hostile.eml"]))
    assert body.source == "html"
    assert "# Monthly news" in body.text
    assert "- First item" in body.text
    assert "Tea | 3 EUR" in body.text
    assert "[1] https://evil.example/phish" in body.text
    assert "document.location" not in body.text and "alert" not in body.text


def test_big_html_is_bounded() -> None:
    msg = parse_message(big_html())
    start = time.process_time()
    body = render_body(msg)
    html_body(msg)
    assert time.process_time() - start < 5
    assert any("HTML cut" in n for n in body.notices)


@pytest.mark.parametrize("name", sorted(corpus()))
def test_every_corpus_message_renders(name: str) -> None:
    msg = parse_message(corpus()[name])
    start = time.process_time()
    body = render_body(msg)
    html_body(msg)
    assert isinstance(body.text, str)
    assert time.process_time() - start < 5


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bad-charset.eml", "Café au lait, naïve façade."),
        ("wrong-charset-label.eml", "Grüße aus Zürich — déjà vu."),
        ("refused-codec.eml", "escape \\x1b[31m stays literal"),
        ("broken-base64.eml", "Hello, this is broken base64 text and more text"),
        ("broken-qp.eml", "Soft break at the endof a line, a bad escape =ZZ here, a lone = sign"),
        ("missing-boundary.eml", "The text is still readable."),
        ("boundary-not-found.eml", "Plain words without any delimiter line."),
        ("unclosed-multipart.eml", "First part text."),
        ("forwarded.eml", "See the message below."),
        ("no-headers.eml", "This message has no header block at all.\nJust text."),
        ("many-parts.eml", "first part is the body"),
        ("huge-to.eml", "Hello everyone."),
        ("many-headers.eml", "body after many fields"),
    ],
)
def test_broken_bodies_read_sensibly(name: str, expected: str) -> None:
    body = render_body(parse_message(corpus()[name]))
    assert body.text.startswith(expected)
