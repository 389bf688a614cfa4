"""Address completion from the index: prefix matching, ranking by use, hostile names."""

from __future__ import annotations

from pathlib import Path

from mailbag.message.addresses import parse_address
from mailbag.paths import Paths
from mailbag.store.contacts import SENT_WEIGHT, KnownAddress, known_addresses
from mailbag.store.index import Folder, Store


def _msg(frm: str, to: str, cc: str = "", date: str = "Mon, 02 Mar 2020 09:00:00 +0000") -> bytes:
    head = f"From: {frm}\r\nTo: {to}\r\n"
    if cc:
        head += f"Cc: {cc}\r\n"
    return (head + f"Date: {date}\r\nSubject: s\r\n\r\nbody\r\n").encode()


def _store(tmp_path: Path) -> tuple[Paths, Folder, Folder]:
    paths = Paths(tmp_path, tmp_path / "data", tmp_path / "state")
    with Store.open(paths) as store:
        inbox = store.folder("work", "INBOX", role="inbox")
        sent = store.folder("work", "Sent", role="sent")
    return paths, inbox, sent


def test_prefix_matches_address_and_name_words_case_insensitively(tmp_path: Path) -> None:
    paths, inbox, _ = _store(tmp_path)
    with Store.open(paths) as store:
        store.add_bytes(inbox, _msg("Carol Smith <carol@example.org>", "me@example.org"))
        store.add_bytes(inbox, _msg("Oscar <oscar@example.org>", "me@example.org"))
        store.add_bytes(inbox, _msg("news@shop.example", "me@example.org"))
        assert [k.address for k in known_addresses(store, "car")] == ["carol@example.org"]
        assert [k.address for k in known_addresses(store, "SMI")] == ["carol@example.org"]
        # a name typed with its space, from its first word or a later one
        assert [k.address for k in known_addresses(store, "carol  sm")] == ["carol@example.org"]
        assert [k.address for k in known_addresses(store, "Smith")] == ["carol@example.org"]
        assert known_addresses(store, "carol x") == []
        assert known_addresses(store, "rol sm") == []
        # "car" inside "oscar" is not a prefix of anything of Oscar's
        assert [k.address for k in known_addresses(store, "osc")] == ["oscar@example.org"]
        assert known_addresses(store, "") == []
        assert known_addresses(store, "zzz") == []
        hit = known_addresses(store, "carol@")[0]
        assert hit == KnownAddress("carol@example.org", "Carol Smith", 1, hit.last)
        assert hit.display() == "Carol Smith <carol@example.org>"


def test_ranked_by_use_and_sent_mail_counts_more(tmp_path: Path) -> None:
    paths, inbox, sent = _store(tmp_path)
    with Store.open(paths) as store:
        for _ in range(2):
            store.add_bytes(inbox, _msg("dana@example.org", "me@example.org"))
        # one message the user wrote outweighs two received ones
        store.add_bytes(sent, _msg("me@example.org", "Dave <dave@example.org>"))
        store.add_bytes(inbox, _msg("daisy@example.org", "me@example.org"))
        got = known_addresses(store, "da", exclude=["ME@example.org"])
    assert [(k.address, k.uses) for k in got] == [
        ("dave@example.org", SENT_WEIGHT),
        ("dana@example.org", 2),
        ("daisy@example.org", 1),
    ]


def test_ties_go_to_the_most_recent_and_limit_and_account(tmp_path: Path) -> None:
    paths, inbox, _ = _store(tmp_path)
    with Store.open(paths) as store:
        other = store.folder("home", "INBOX", role="inbox")
        store.add_bytes(
            inbox, _msg("eve@old.example", "me@x.org", date="Mon, 02 Mar 2020 09:00 +0000")
        )
        store.add_bytes(
            inbox, _msg("eva@new.example", "me@x.org", date="Mon, 02 Mar 2021 09:00 +0000")
        )
        store.add_bytes(other, _msg("evan@home.example", "me@x.org"))
        assert [k.address for k in known_addresses(store, "ev", account="work")] == [
            "eva@new.example",
            "eve@old.example",
        ]
        assert len(known_addresses(store, "ev", limit=1)) == 1
        assert [k.address for k in known_addresses(store, "ev", account="home")] == [
            "evan@home.example"
        ]


def test_an_address_counts_once_per_message_and_deleted_mail_not_at_all(tmp_path: Path) -> None:
    paths, inbox, _ = _store(tmp_path)
    with Store.open(paths) as store:
        store.add_bytes(inbox, _msg("fay@example.org", "fay@example.org", cc="FAY@Example.ORG"))
        gone = store.add_bytes(inbox, _msg("fay@example.org", "me@example.org"))
        store.remove(gone)
        assert [(k.address, k.uses) for k in known_addresses(store, "fay")] == [
            ("fay@example.org", 1)
        ]


def test_hostile_names_and_addresses_are_cleaned_or_left_out(tmp_path: Path) -> None:
    paths, inbox, _ = _store(tmp_path)
    with Store.open(paths) as store:
        # an encoded name with CR/LF decodes to control characters in the index
        store.add_bytes(
            inbox,
            b"From: =?UTF-8?Q?Gil=0D=0ABcc:_x@evil.example?= <gil@example.org>\r\n"
            b'To: me@example.org, "g" <g<script>@example.org>, gx@bad_domain!\r\n'
            b"Subject: s\r\n\r\nx\r\n",
        )
        # LIKE wildcards in the prefix are taken literally
        assert known_addresses(store, "g%") == []
        assert known_addresses(store, "_") == []
        got = known_addresses(store, "g") + known_addresses(store, "x")
    assert "gil@example.org" in [k.address for k in got]
    for k in got:
        # whatever is suggested is one clean address once accepted into the To field
        assert not any(c in k.name for c in "\r\n\t\x00")
        assert parse_address(k.display()).addr_spec == k.address
    assert all("<" not in k.address and "!" not in k.address for k in got)


def test_names_with_specials_are_quoted_for_the_to_field(tmp_path: Path) -> None:
    k = KnownAddress("hal@example.org", "Doe, Hal", 1, 0.0)
    assert k.display() == '"Doe, Hal" <hal@example.org>'
    assert parse_address(k.display()).addr_spec == "hal@example.org"


def test_ranks_and_matches_on_a_100k_message_index(tmp_path: Path) -> None:
    paths, inbox, _ = _store(tmp_path)
    with Store.open(paths) as store:
        # index rows only (no files): completion reads nothing but the index
        store.conn.execute("BEGIN")
        store.conn.executemany(
            "INSERT INTO messages(folder_id, key, from_addr, to_addrs, cc_addrs, date, added) "
            "VALUES (?, ?, ?, ?, '', ?, 0)",
            (
                (inbox.id, f"k{n}", f"Person {n} <p{n}@example{n % 50}.org>", "me@x.org", n)
                for n in range(100_000)
            ),
        )
        store.conn.execute("COMMIT")
    with Store.open(paths) as store:
        # speed at this size is measured by bench/compose_bench.py, not asserted here
        assert known_addresses(store, "zz") == []
        matches = known_addresses(store, "person 19")
        assert matches
        assert all(found.address.startswith("p19") for found in matches)
        assert known_addresses(store, "p")[0].address == "p99999@example49.org"  # newest
