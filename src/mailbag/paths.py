"""Where mailbag keeps things: MAILBAG_HOME, or the platform's user directories.

Paths are computed from an environment mapping passed in, never cached in
module state, so tests and several homes can coexist in one process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from mailbag.record import NamedTuple


class Paths(NamedTuple):
    """The directories mailbag uses for one home."""

    config_dir: Path
    data_dir: Path
    state_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def mail_dir(self) -> Path:
        return self.data_dir / "mail"

    @property
    def index_file(self) -> Path:
        return self.data_dir / "index.sqlite3"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def tui_state_file(self) -> Path:
        """What the interactive client remembers between runs (not settings)."""
        return self.state_dir / "tui.json"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Paths:
        env = os.environ if env is None else env
        home = env.get("MAILBAG_HOME")
        if home:
            root = Path(home).expanduser()
            return cls(config_dir=root, data_dir=root / "data", state_dir=root / "state")
        import platformdirs  # imported here: keeps `mailbag --version` fast

        return cls(
            config_dir=Path(platformdirs.user_config_dir("mailbag", appauthor=False)),
            data_dir=Path(platformdirs.user_data_dir("mailbag", appauthor=False)),
            state_dir=Path(platformdirs.user_state_dir("mailbag", appauthor=False)),
        )
