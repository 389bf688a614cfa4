"""The parsed config kept for the next command: used only for exactly the same text,
never trusted when damaged, never readable by others, validated every time."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest

from mailbag.config import file as config_file
from mailbag.config import load_config, save_account
from mailbag.errors import ConfigError
from mailbag.paths import Paths
from mailbag.sandbox import Sandbox

CONFIG = """\
[accounts.work]
email = "me@example.org"
protocol = "imap"

[accounts.work.incoming]
host = "imap.example.org"
port = 993
security = "ssl"
username = "me@example.org"

[accounts.work.smtp]
host = "smtp.example.org"
port = 465
security = "ssl"
username = "me@example.org"
"""


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    p = Paths.from_env({"MAILBAG_HOME": str(tmp_path / "home")})
    p.config_dir.mkdir(parents=True)
    p.config_file.write_text(CONFIG)
    return p


def _no_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(text: str, file: Path) -> object:
        raise AssertionError("parsed again")

    monkeypatch.setattr(config_file, "_parse_text", refuse)


def test_the_same_text_is_not_parsed_again(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_config(paths)
    cache = paths.state_dir / "config.cache"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600  # a copy of the config: private
    _no_parser(monkeypatch)
    assert load_config(paths) == first


def test_an_edit_is_seen_even_with_the_same_size_and_time(paths: Paths) -> None:
    load_config(paths)
    st = paths.config_file.stat()
    edited = CONFIG.replace("imap.example.org", "imap.example.net")
    assert len(edited) == len(CONFIG)
    paths.config_file.write_text(edited)
    os.utime(paths.config_file, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert load_config(paths).account("work").incoming.host == "imap.example.net"


def test_a_damaged_cache_is_ignored_and_replaced(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = load_config(paths)
    cache = paths.state_dir / "config.cache"
    good = cache.read_bytes()
    damages = [
        b"(1, 'x'",
        b"__import__('os').system('false')",
        b"\x00\xff",
        good[: len(good) // 2],  # cut short
        good[:25] + b"\xff" * 40,  # the header, then garbage
        config_file._CACHE_MAGIC + b"",
        config_file._CACHE_MAGIC + __import__("marshal").dumps((1, 2, 3)),  # not an entry
        config_file._CACHE_MAGIC + __import__("marshal").dumps([2, CONFIG, {}]),
    ]
    for damage in damages:
        cache.write_bytes(damage)
        assert load_config(paths) == expected
    _no_parser(monkeypatch)  # rewritten whole by the last load
    assert load_config(paths) == expected


def test_a_cached_text_is_still_validated(paths: Paths) -> None:
    load_config(paths)
    bad = CONFIG.replace("port = 993", 'port = "many"')
    paths.config_file.write_text(bad)
    with pytest.raises(ConfigError) as err:
        load_config(paths)
    assert err.value.fields["key"] == "accounts.work.incoming.port"
    # and an invalid text never replaces the cache of the last valid one
    paths.config_file.write_text(CONFIG)
    assert load_config(paths).account("work").incoming.port == 993


def test_values_the_cache_cannot_keep_exactly_are_not_cached() -> None:
    assert config_file._as_literals("x", {"when": dt.date(2026, 1, 1)}) is None
    assert config_file._as_literals("x", {"odd": float("nan")}) is None  # nan != nan
    assert config_file._as_literals("x", {"a": [1, "b", 2.5, True]}) is not None
    assert config_file._as_literals("x", {"big": float("inf")}) is not None


def test_saving_an_account_is_seen_by_the_next_load(sandbox: Sandbox, tmp_path: Path) -> None:
    paths = Paths.from_env({"MAILBAG_HOME": str(tmp_path / "home")})
    assert load_config(paths).accounts == {}
    save_account(paths, sandbox.account("alice", name="a", password_command=True))
    assert list(load_config(paths).accounts) == ["a"]
    save_account(paths, sandbox.account("bob", name="b", password_command=True))
    assert list(load_config(paths).accounts) == ["a", "b"]
