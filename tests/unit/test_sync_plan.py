"""The sync planner's case matrix, with values only."""

from __future__ import annotations

import pytest

from mailbag.sync.plan import (
    DeleteLocal,
    Download,
    ExpungeRemote,
    Forget,
    LocalMessage,
    Pair,
    RemoteFolder,
    RemoteMessage,
    SetFlags,
    SyncedState,
    Upload,
    merge_flags,
    needs_identity,
    plan,
)

S, F, A, D = "\\Seen", "\\Flagged", "\\Answered", "\\Draft"


def fs(*flags: str) -> frozenset[str]:
    return frozenset(flags)


def loc(
    row: int | None,
    uid: int | None,
    flags: frozenset[str] = fs(),
    synced: frozenset[str] | None = None,
    *,
    present: bool = True,
    mid: str = "",
    size: int | None = None,
) -> LocalMessage:
    synced_flags = synced if synced is not None else (flags if uid is not None else None)
    return LocalMessage(
        row=row,
        key=f"k{row}",
        uid=uid,
        flags=flags,
        present=present,
        message_id=mid,
        size=size,
        synced_flags=synced_flags,
    )


def remote(uidvalidity: int = 1, *msgs: RemoteMessage) -> RemoteFolder:
    return RemoteFolder(uidvalidity, {m.uid: m for m in msgs})


def rm(uid: int, *flags: str, mid: str | None = None, size: int | None = None) -> RemoteMessage:
    return RemoteMessage(uid, frozenset(flags), mid, size)


SYNCED = SyncedState(uidvalidity=1)


@pytest.mark.parametrize(
    ("local", "base", "remote_", "merged"),
    [
        (fs(S), fs(), fs(), fs(S)),  # seen here
        (fs(), fs(), fs(S), fs(S)),  # seen there
        (fs(), fs(S), fs(S), fs()),  # unseen here
        (fs(S), fs(S), fs(), fs()),  # unseen there
        (fs(S), fs(), fs(F), fs(S, F)),  # different additions both kept
        (fs(F), fs(S), fs(S, A), fs(F, A)),  # removal here, addition there
        (fs(), fs(S, F), fs(S), fs()),  # both removed something
        (fs(S), None, fs(F), fs(S, F)),  # no base: union
    ],
)
def test_merge_flags(
    local: frozenset[str],
    base: frozenset[str] | None,
    remote_: frozenset[str],
    merged: frozenset[str],
) -> None:
    assert merge_flags(local, base, remote_) == merged


def test_nothing_to_do_when_equal() -> None:
    p = plan([loc(1, 10, fs(S)), loc(2, 11)], SYNCED, remote(1, rm(10, S), rm(11)))
    assert p.actions == [] and p.stop is None


def test_new_on_both_sides() -> None:
    p = plan([loc(1, 10), loc(2, None, fs(S))], SYNCED, remote(1, rm(10), rm(11, F)))
    assert p.actions == [Download(11, fs(F)), Upload("k2", 2, fs(S))]


def test_flag_changes_both_ways() -> None:
    p = plan(
        [loc(1, 10, fs(S), synced=fs()), loc(2, 11, fs(), synced=fs())],
        SYNCED,
        remote(1, rm(10), rm(11, F, "\\Recent")),
    )
    assert p.actions == [
        SetFlags(10, "k1", 1, fs(S), local=False, add=fs(S), remove=fs()),
        SetFlags(11, "k2", 2, fs(F), local=True, add=fs(), remove=fs()),
    ]


def test_conflicting_flag_changes_merge_three_ways() -> None:
    p = plan([loc(1, 10, fs(F), synced=fs(S))], SYNCED, remote(1, rm(10, S, A)))
    (a,) = p.actions
    assert isinstance(a, SetFlags)
    assert a.flags == fs(F, A) and a.local and a.add == fs(F) and a.remove == fs(S)


def test_expunged_on_server_deletes_here() -> None:
    p = plan([loc(1, 10), loc(2, 11)], SYNCED, remote(1, rm(11)))
    assert p.actions == [DeleteLocal(10, "k1", 1)]


def test_deleted_here_expunges_on_server() -> None:
    p = plan([loc(1, 10, present=False), loc(2, 11)], SYNCED, remote(1, rm(10), rm(11)))
    assert p.actions == [ExpungeRemote(10, 1)]


def test_gone_on_both_sides_is_forgotten() -> None:
    p = plan([loc(1, 10, present=False), loc(2, None, present=False)], SYNCED, remote(1))
    assert sorted(a.row for a in p.actions if isinstance(a, Forget)) == [1, 2]
    assert len(p.actions) == 2


def test_uidvalidity_change_repairs_by_message_id_and_size_and_deletes_nothing() -> None:
    local = [
        loc(1, 10, fs(S), mid="<a>", size=100),
        loc(2, 11, fs(), mid="<b>", size=200),
        loc(3, 12, fs(), mid="<c>", size=300),  # not on the new server: uploaded back
        loc(4, 13, present=False, mid="<d>", size=1),  # deleted here: UID void, forget
    ]
    server = remote(
        2,
        rm(500, mid="<a>", size=100),
        rm(501, F, mid="<b>", size=200),
        rm(502, mid="<new>", size=5),
        rm(503, mid="<b>", size=999),  # same Message-ID, other size: not the same message
    )
    assert needs_identity(local, SYNCED, server) == {500, 501, 502, 503}
    p = plan(local, SYNCED, server)
    assert p.uidvalidity_changed and p.notes
    assert not p.of(DeleteLocal) and not p.of(ExpungeRemote)
    assert Pair("k1", 1, 500) in p.actions
    assert Pair("k2", 2, 501) in p.actions
    assert [a.uid for a in p.of(Download)] == [502, 503]  # type: ignore[attr-defined]
    assert p.of(Upload) == [Upload("k3", 3, fs())]
    assert Forget(4) in p.actions
    # flags of a new pairing are united, never dropped
    flags = {a.uid: a for a in p.of(SetFlags)}  # type: ignore[attr-defined]
    assert flags[500].add == fs(S) and flags[501].flags == fs(F) and flags[501].local


def test_wiped_index_pairs_local_files_instead_of_duplicating() -> None:
    # index gone: every file is unknown (row None, uid None), folder never synced
    local = [LocalMessage(None, f"f{i}", None, fs(S), True, f"<m{i}>", 10 + i) for i in range(100)]
    server = remote(7, *(rm(i + 1, S, mid=f"<m{i}>", size=10 + i) for i in range(100)))
    state = SyncedState(uidvalidity=None)
    assert len(needs_identity(local, state, server)) == 100
    p = plan(local, state, server, threshold=5)
    assert len(p.of(Pair)) == 100
    assert not p.of(Download) and not p.of(Upload) and p.stop is None


def test_no_identity_needed_when_nothing_is_unpaired_here() -> None:
    assert needs_identity([loc(1, 10)], SYNCED, remote(1, rm(10), rm(11))) == set()


def test_crash_after_append_pairs_instead_of_uploading_twice() -> None:
    # uploaded, but the UID was never recorded: the server has it as an unpaired message
    local = [loc(1, None, fs(S), mid="<x>", size=42)]
    server = remote(1, rm(77, S, mid="<x>", size=42))
    p = plan(local, SYNCED, server)
    assert p.of(Pair) == [Pair("k1", 1, 77)] and not p.of(Upload) and not p.of(Download)


def test_mass_deletion_on_server_stops_without_force() -> None:
    local = [loc(i, i) for i in range(1, 101)]
    p = plan(local, SYNCED, remote(1), threshold=50)
    assert p.stop is not None and p.stop.side == "local" and p.stop.count == 100
    assert "100 of 100" in p.stop.reason
    assert not p.of(DeleteLocal)
    forced = plan(local, SYNCED, remote(1), threshold=50, force=True)
    assert forced.stop is None and len(forced.of(DeleteLocal)) == 100


def test_emptied_local_folder_stops_without_force() -> None:
    local = [loc(i, i, present=False) for i in range(1, 61)]
    server = remote(1, *(rm(i) for i in range(1, 61)))
    p = plan(local, SYNCED, server, threshold=50)
    assert p.stop is not None and p.stop.side == "server" and not p.of(ExpungeRemote)
    # under the threshold it is an ordinary deletion
    assert len(plan(local[:3], SYNCED, server, threshold=50).of(ExpungeRemote)) == 3


def test_missing_folder_directory_is_downloaded_again_never_deleted() -> None:
    local = [loc(i, i, fs(S), present=False) for i in range(1, 201)]
    server = remote(1, *(rm(i, S) for i in range(1, 201)))
    p = plan(local, SyncedState(uidvalidity=1, local_dir_missing=True), server, threshold=50)
    assert p.stop is None and p.restored == 200
    assert not p.of(ExpungeRemote)
    assert p.of(Download)[0] == Download(1, fs(S), 1)


def test_excluded_uids_are_left_alone() -> None:
    p = plan([loc(1, 10)], SYNCED, remote(1, rm(10), rm(11)), exclude_uids=[11])
    assert p.actions == []


def test_message_without_message_id_is_never_paired_by_size_alone() -> None:
    local = [loc(1, None, mid="", size=10)]
    p = plan(local, SYNCED, remote(1, rm(5, mid="", size=10)))
    assert p.of(Download) and p.of(Upload) and not p.of(Pair)
