"""The backends of the test keyring plugin (see `keyring_plugin`): copied into the
plugin directory as `mailbag_test_keyring` and found there by keyring's search."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.compat import properties
from keyring.errors import KeyringLocked, PasswordDeleteError

__all__ = ["FileKeyring", "OtherFileKeyring", "searched"]


def searched() -> None:
    """The entry point's function: keyring calls it each time its search loads plugins."""
    _log("search")


def _log(line: str) -> None:
    log = os.environ.get("MAILBAG_TEST_KEYRING_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


class FileKeyring(KeyringBackend):
    """Secrets in the JSON file MAILBAG_TEST_KEYRING ({"service\\x00key": secret})."""

    variable = "MAILBAG_TEST_KEYRING"
    switch = "MAILBAG_TEST_KEYRING_OFF"  # "1": not viable, as when a daemon is gone
    rank = 3.0

    @properties.classproperty
    def priority(cls) -> float:
        if not os.environ.get(cls.variable):
            raise RuntimeError(f"{cls.variable} is not set")
        if os.environ.get(cls.switch) == "1":
            raise RuntimeError("switched off")
        return float(os.environ.get(f"{cls.variable}_RANK") or cls.rank)

    def _file(self) -> Path:
        return Path(os.environ[self.variable])

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self._file().read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return {str(k): str(v) for k, v in data.items()}

    def _write(self, data: dict[str, str]) -> None:
        fd = os.open(self._file(), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)

    def get_password(self, service: str, username: str) -> str | None:
        line = f"get {type(self).__name__} {username}"
        if os.environ.get("MAILBAG_TEST_KEYRING_WHEN") == "1":
            # where the read happened: before or after the sync engine loaded, which thread
            engine = int("mailbag.sync.imap" in sys.modules)
            line += f" engine={engine} thread={threading.current_thread().name}"
        _log(line)
        if os.environ.get(f"{self.variable}_LOCKED") == "1":
            raise KeyringLocked("the collection is locked (the unlock prompt was dismissed)")
        return self._read().get(f"{service}\x00{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._read()
        data[f"{service}\x00{username}"] = password
        self._write(data)

    def delete_password(self, service: str, username: str) -> None:
        data = self._read()
        if data.pop(f"{service}\x00{username}", None) is None:
            raise PasswordDeleteError(username)
        self._write(data)


class OtherFileKeyring(FileKeyring):
    """A second backend, in the file MAILBAG_TEST_KEYRING_OTHER."""

    variable = "MAILBAG_TEST_KEYRING_OTHER"
    switch = "MAILBAG_TEST_KEYRING_OTHER_OFF"
    rank = 2.0
