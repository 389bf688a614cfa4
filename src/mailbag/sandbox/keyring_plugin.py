"""A keyring backend plugin for tests and benches, installed the way real ones are.

`install(directory)` writes a distribution's metadata into `directory` with an entry
point in keyring's `keyring.backends` group, and the backends' module
(`keyring_plugin_backends.py`, as `mailbag_test_keyring`); a process with that directory on its
PYTHONPATH (`environment(...)`) then finds these backends by keyring's own search,
exactly like a backend from PyPI. Secrets live in a JSON file named by an environment
variable, never in the user's real keyring.

- `FileKeyring` (priority 3, or MAILBAG_TEST_KEYRING_RANK: 0.5 is keyrings.alt's
  file backend's): viable while MAILBAG_TEST_KEYRING names its file and
  MAILBAG_TEST_KEYRING_OFF is not "1"; MAILBAG_TEST_KEYRING_LOCKED="1" makes reads
  fail as a locked Secret Service collection does (KeyringLocked).
- `OtherFileKeyring` (priority 2): viable only while MAILBAG_TEST_KEYRING_OTHER names
  its file (so normally the search sees one backend, not a chain of two).

MAILBAG_TEST_KEYRING_LOG, when set, gets one line per event: "search" each time
keyring's search loads the plugins, "get CLASS KEY" per password read (the key, never
the secret); with MAILBAG_TEST_KEYRING_WHEN="1" that line ends with where the read
happened: "engine=0|1" (whether the sync engine had loaded), "thread=NAME".
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["MODULE", "environment", "install", "store"]

DIST = "mailbag_test_keyring-1.0.dist-info"
#: the backends' module, copied into the plugin directory (not imported from mailbag,
#: so any mailbag checkout can be run against it)
MODULE = "mailbag_test_keyring"


def install(directory: Path) -> Path:
    """Write the plugin's distribution metadata into `directory`; returns it."""
    dist = directory / DIST
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: mailbag-test-keyring\nVersion: 1.0\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text(
        f"[keyring.backends]\nmailbag-test = {MODULE}:searched\n",
        encoding="utf-8",
    )
    source = Path(__file__).with_name("keyring_plugin_backends.py")
    (directory / f"{MODULE}.py").write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    return directory


def environment(
    directory: Path, base: Mapping[str, str] | None = None, **values: str
) -> dict[str, str]:
    """`base` (default: os.environ) with the plugin on PYTHONPATH, no D-Bus session
    (so no desktop keyring joins the search), and `values` set (e.g.
    MAILBAG_TEST_KEYRING="/tmp/x.json")."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(directory), env.get("PYTHONPATH")) if p)
    env["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=/nonexistent/mailbag-test-bus"
    env.pop("PYTHON_KEYRING_BACKEND", None)
    env.update(values)
    return env


def store(file: Path, service: str, key: str, secret: str) -> None:
    """Put a secret into a plugin keyring file (from the test or bench process)."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = {}
    data[f"{service}\x00{key}"] = secret
    file.write_text(json.dumps(data), encoding="utf-8")
    file.chmod(0o600)
