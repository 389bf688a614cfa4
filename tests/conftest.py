"""Shared fixtures: the real sandbox servers, and an isolated MAILBAG_HOME."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mailbag.sandbox import Sandbox

if TYPE_CHECKING:
    from mailbag.store.index import Store


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """One Dovecot + SMTP for the whole run. Tests that change server state use
    their own users or folders, or the `fresh_sandbox` fixture."""
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="session")
def pop_sandbox() -> Iterator[Sandbox]:
    """A sandbox whose users pop1..pop40 only the POP3 tests use (take one per test
    with `pop3_support.take_user()`), so their mailboxes start empty."""
    users = {f"pop{i}": f"pop{i}-secret" for i in range(1, 41)}
    with Sandbox(users=users, services={"imap", "pop3", "lmtp"}) as sb:
        yield sb


@pytest.fixture
def fresh_sandbox() -> Iterator[Sandbox]:
    """A sandbox of its own, for tests that stop, restart or break servers."""
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def mailbag_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "mailbag-home"
    home.mkdir()
    monkeypatch.setenv("MAILBAG_HOME", str(home))
    return home


@pytest.fixture
def tmp_store(tmp_path: Path) -> Iterator[Store]:
    """An empty index and mail directory under `tmp_path/data`, closed after the test."""
    from mailbag.store.index import Store

    s = Store.open_at(tmp_path / "data" / "index.sqlite3", tmp_path / "data" / "mail")
    try:
        yield s
    finally:
        s.close()


class MemoryKeyring:
    """An in-memory keyring backend, so no test touches the user's real keyring."""

    def __init__(self) -> None:
        import keyring.backend

        class _Backend(keyring.backend.KeyringBackend):
            priority = 1  # type: ignore[assignment]

            def __init__(inner) -> None:
                super().__init__()
                inner.store: dict[tuple[str, str], str] = {}

            def get_password(inner, service: str, username: str) -> str | None:
                return inner.store.get((service, username))

            def set_password(inner, service: str, username: str, password: str) -> None:
                inner.store[(service, username)] = password

            def delete_password(inner, service: str, username: str) -> None:
                import keyring.errors

                if inner.store.pop((service, username), None) is None:
                    raise keyring.errors.PasswordDeleteError(username)

        self.backend = _Backend()

    @property
    def store(self) -> dict[tuple[str, str], str]:
        return self.backend.store  # type: ignore[no-any-return]


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    """Route keyring calls to memory for the test (`.store` holds (service, key) -> secret)."""
    import keyring

    previous = keyring.get_keyring()
    kr = MemoryKeyring()
    keyring.set_keyring(kr.backend)
    try:
        yield kr
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def no_keyring() -> Iterator[None]:
    """No usable keyring backend, as on a headless machine."""
    import keyring
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        yield
    finally:
        keyring.set_keyring(previous)


@pytest.fixture(scope="session")
def oauth_sandbox() -> Iterator[Sandbox]:
    """A sandbox whose Dovecot and SMTP server also accept OAuth2 tokens (XOAUTH2,
    OAUTHBEARER) checked at its local authorization server (`sb.oauth2`)."""
    with Sandbox(oauth2=True) as sb:
        yield sb
