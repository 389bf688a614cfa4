"""What the interactive client remembers between runs: which folders show their
list by conversation.

It lives in a small JSON file in the state directory (`Paths.tui_state_file`),
not in the config: it changes as the app is used, and the config is the
user's to write. A missing file means nothing remembered yet; an unreadable
one is reported and replaced on the next change, never a reason not to start.
Nothing here touches the store or the network.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from mailbag.errors import StoreError

__all__ = ["UiState"]

VERSION = 1


class UiState:
    """Per account, the folders whose list is grouped by conversation (`t`)."""

    def __init__(self, path: Path, threaded: dict[str, set[str]] | None = None) -> None:
        self.path = path
        self._threaded = threaded or {}

    @classmethod
    def load(cls, path: Path) -> tuple[UiState, str | None]:
        """The remembered state, and what went wrong reading it (None: nothing)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path), None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            return cls(path), f"could not read {path} ({exc}); starting from defaults"
        threaded = data.get("threaded") if isinstance(data, dict) else None
        if not isinstance(threaded, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(f, str) for f in v)
            for k, v in threaded.items()
        ):
            return cls(path), f"{path} is not what mailbag wrote; starting from defaults"
        return cls(path, {account: set(folders) for account, folders in threaded.items()}), None

    def threaded(self, account: str, folder: str) -> bool:
        return folder in self._threaded.get(account, ())

    def set_threaded(self, account: str, folder: str, on: bool) -> None:
        """Remember the choice for this folder, and save it at once."""
        folders = self._threaded.setdefault(account, set())
        if on == (folder in folders):
            return
        if on:
            folders.add(folder)
        else:
            folders.discard(folder)
            if not folders:
                del self._threaded[account]
        self.save()

    def save(self) -> None:
        """Write the whole state: a new file renamed into place, so a crash leaves the old
        one or the new one, never half of one."""
        data = {
            "version": VERSION,
            "threaded": {a: sorted(f) for a, f in sorted(self._threaded.items())},
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tui-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(data, fh, indent=1)
                os.replace(tmp, self.path)
            except OSError:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StoreError(
                f"could not save the client's state to {self.path}: {exc}",
                hint="check that the state directory is writable",
                path=str(self.path),
            ) from exc
