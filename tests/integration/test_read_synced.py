"""Reading mail synced from the real sandbox, and the local changes going back.

Sync INBOX (generated mail plus hostile messages appended over IMAP), then
list/search/read through the CLI; read, flag, move and delete locally; sync
again and check the server has every change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostile import corpus
from mailbag.cli.main import main
from mailbag.sandbox import Sandbox

pytestmark = pytest.mark.sandbox
USER = "reader"
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
HOSTILE = [
    "escape-sequences.eml",
    "bidi-override.eml",
    "html-hostile.eml",
    "path-traversal.eml",
    "8bit-headers.eml",
    "broken-base64.eml",
    "deep-nesting.eml",
    "many-parts.eml",
    "huge-to.eml",
]


def corpus_subject(name: str) -> str:
    from mailbag.message.parse import parse_message

    return parse_message(corpus()[name]).subject


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    with Sandbox(users={USER: "reader-secret"}, services={"imap", "smtp"}) as sb:
        yield sb


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def run(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *argv: str) -> object:
        code, out, err = self.run(*argv, "--json")
        assert code == 0, err
        return json.loads(out)


def _configure(sb: Sandbox, home: Path) -> None:
    from mailbag.config import save_account
    from mailbag.paths import Paths

    paths = Paths.from_env({"MAILBAG_HOME": str(home)})
    save_account(paths, sb.account(USER, name="reader", password_command=True))


def test_synced_mail_is_read_searched_and_changes_go_back(
    box: Sandbox,
    mailbag_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    box.fill(USER, 25, "INBOX", seed=21)
    with box.control(USER) as imap:
        imap.create("Archive")
        for name in HOSTILE:
            imap.append("INBOX", corpus()[name])
    _configure(box, mailbag_home)
    cli = Cli(capsys)
    code, _, err = cli.run("sync")
    assert code == 0, err

    listing = cli.json("list", "--limit", "0")
    assert isinstance(listing, list) and len(listing) == 25 + len(HOSTILE)
    assert {m["account"] for m in listing} == {"reader"}
    by_subject = {m["subject"]: m["id"] for m in listing}

    hits = cli.json("search", "subject:hostile has:attachment")
    assert [h["subject"] for h in hits] == ["attachments with hostile names"]  # type: ignore[index]
    code, out, err = cli.run("search", "from:joerg OR from:news")
    assert code == 0 and len(out.splitlines()) == 2

    esc_id = next(i for s, i in by_subject.items() if "RED" in s)
    code, out, err = cli.run("read", esc_id)
    assert code == 0 and "Body line overwritten line" in out
    assert not UNSAFE.search(out.replace("\n", "")) and not UNSAFE.search(err.replace("\n", ""))
    code, out, err = cli.run("read", by_subject["HTML with scripts, handlers, forms and trackers"])
    assert "Monthly news" in out and "7 remote resources blocked" in err
    code, out, err = cli.run("read", by_subject["forty thousand parts"], "--peek")
    assert "first part is the body" in out and "not shown" in err

    saved = tmp_path / "saved"
    saved.mkdir()
    doc = cli.json(
        "attachments", by_subject["attachments with hostile names"], "--save", str(saved)
    )
    assert isinstance(doc, dict)
    assert all(Path(a["saved_as"]).parent == saved for a in doc["attachments"])

    with box.control(USER) as imap:
        before = imap.flags("INBOX")
    plain = [m for m in listing if m["subject"] not in {corpus_subject(n) for n in HOSTILE}]
    flag_id, move_id, trash_id, gone_id = (m["id"] for m in plain[-4:])
    assert cli.run("flag", flag_id, "+flagged")[0] == 0
    moved = cli.json("move", move_id, "Archive")
    deleted = cli.json("delete", trash_id)
    assert cli.json("delete", "--expunge", gone_id)[0]["expunged"] is True  # type: ignore[index]

    code, _, err = cli.run("sync")
    assert code == 0, err
    with box.control(USER) as imap:
        flags = imap.flags("INBOX")
        bodies = imap.fetch_bodies("INBOX")
        archive = imap.fetch_bodies("Archive")
        trash = imap.fetch_bodies("Trash")
    newly_seen = [u for u, f in flags.items() if "\\Seen" in f and "\\Seen" not in before[u]]
    newly_flagged = [
        u for u, f in flags.items() if "\\Flagged" in f and "\\Flagged" not in before[u]
    ]
    # the two messages read without --peek; nothing else changed
    assert sorted(b"escapes@example.org" in bodies[u] or b"html-hostile" in bodies[u]
                  for u in newly_seen) == [True, True]  # fmt: skip
    assert len(newly_flagged) == 1
    assert len(archive) == 1 and len(trash) == 1
    assert len(bodies) == 25 + len(HOSTILE) - 3
    assert isinstance(moved, dict) and isinstance(deleted, list)

    # after the round trip the local view agrees, and search still finds things
    assert [h["folder"] for h in cli.json("search", "folder:Archive")] == ["Archive"]  # type: ignore[index]
    server_flagged = sum("\\Flagged" in f for f in flags.values())
    assert len(cli.json("search", "is:flagged folder:INBOX")) == server_flagged  # type: ignore[arg-type]
