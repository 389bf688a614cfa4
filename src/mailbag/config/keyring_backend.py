"""Which keyring backend to use, found quickly: keyring's own choice, remembered.

`keyring` picks its backend on first use: the one named by PYTHON_KEYRING_BACKEND or
keyringrc.cfg, or else the viable backend of highest priority among all it can find.
That search scans every installed distribution for `keyring.backends` entry points and
imports every backend module it names, then asks each one's priority (a D-Bus round
trip for some). Measured on the 2-core dev machine (Python 3.11, keyring 25.7, median
of runs): `import keyring` ~65 ms, the search ~50-110 ms more (of which ~35-100 ms is
the macOS backend's import calling `ctypes.util.find_library` three times, i.e. gcc and
ldconfig subprocesses, even on Linux; ~10 ms the entry point scan; ~10-30 ms
importing SecretStorage/jeepney/cryptography). A `mailbag sync` with nothing to do is
~110 ms in all, so the search alone nearly doubled it for keyring users.

So the search's choice is remembered in the state directory (`keyring-backend`, mode
0600: class paths and a fingerprint, never a secret), and the next process imports
only that backend, asks its priority again (it must still be viable: priority > 0) and
hands it to keyring with `keyring.set_keyring`, as keyring's own start-up would. That
includes a backend of priority below 1 when the search found nothing better:
keyrings.alt's file backends (0.5, 0.6), what a Debian user without a desktop session
has (no Secret Service on a D-Bus session bus) who follows `secrets.NO_KEYRING_HINT`;
before they were remembered, every such run paid the search (no-op `mailbag sync` with
600 messages, bench/startup_bench.py, load ~9: 245 ms against 73 ms with a password
command). When the search chose a chain (several viable backends: GNOME's Secret
Service and libsecret on a distribution's Python, say), its members are remembered in
order, each must still be viable (priority > 0, keyring's rule for a chain), and they
are chained again (`_chain`). Anything else means the full search, after which the file
is rewritten (or removed when the choice is not worth remembering). Never used, and
never written, when:

- a backend is already set in this process (`keyring.set_keyring`, as tests do with
  in-memory backends, or an earlier search): that one is used as it is;
- the user chose a backend (PYTHON_KEYRING_BACKEND, or keyringrc.cfg in keyring's
  config directory): keyring resolves it, as always;
- the search chose no real backend (fail, null), or a class that cannot be imported
  again by its name (one made at run time).

The fingerprint covers what decides the search: the interpreter, each `sys.path`
directory's modification time (installing or removing a package changes it), the
session variables the desktop backends look at, and the D-Bus service directories (a
keyring daemon installed or removed); and the file is trusted for a day at most.

Measured with bench/startup_bench.py (no-op `mailbag sync`, median of 15 rounds, load
~2.5): password in a Secret Service (gnome-keyring) 242 -> 176 ms, in a keyring plugin
232 -> 143 ms, password_command 108-117 ms. What is left is `import keyring` itself
(~35 ms on top of what a sync loads anyway: jaraco.context pulls in urllib.request,
keyring.core logging and configparser), the backend's module (SecretStorage ~11 ms)
and the read (~19 ms of D-Bus round trips and the session's key exchange).

Two things tried and not kept: resolving the backend in a background thread from the
start of `mailbag sync` made it slower (plugin 143 -> 155 ms, Secret Service 176 ->
184 ms): the work is nearly all imports holding the GIL, the main thread is busy
loading the sync engine meanwhile, and the network already overlaps it (the first
connection opens in its own thread, `transport.open_early`, while the secret is read).
And keeping secrets between reads: a sync reads each account's secret once already
(asserted by tests/integration/test_keyring_startup.py), and a long-lived process (the
TUI) must see a password changed in the keyring.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailbag.paths import Paths

if TYPE_CHECKING:
    from collections.abc import Iterator

    from keyring.backend import KeyringBackend

__all__ = [
    "CACHE_FILE",
    "DEFERRED",
    "MAX_AGE",
    "active_backend",
    "deferring",
    "load_keyring",
    "user_configured",
]

CACHE_FILE = "keyring-backend"
#: seconds a remembered choice is trusted before the full search runs again
MAX_AGE = 24 * 3600.0
_HEADER = "mailbag keyring backend 1"
#: environment variables the desktop backends' priorities depend on
_SESSION_VARS = (
    "DBUS_SESSION_BUS_ADDRESS",
    "XDG_RUNTIME_DIR",
    "XDG_CURRENT_DESKTOP",
    "XDG_SESSION_TYPE",
    "DISPLAY",
    "WAYLAND_DISPLAY",
)
_lock = threading.Lock()
_UNKNOWN = object()


#: modules keyring's own imports load (through jaraco.context, jaraco.functools,
#: keyring.backend and keyring.core) but only use in functions a password read does not
#: call: the package download helpers (urllib.request, with http.client and the email
#: package; tempfile; subprocess), the entry point scan of the full search
#: (importlib_metadata, with zipfile and csv), inspect (with ast and dis), more_itertools
#: and keyringrc.cfg's parser. ~105 million instructions (~30 ms) of the ~190 million
#: `import keyring` costs on top of what a sync loads. Also `traceback` (with linecache,
#: tokenize and textwrap), which `logging` imports to format exceptions: ~9.5 million
#: instructions of a no-op `mailbag sync` on the quick path (278 -> 268M with
#: keyrings.alt's file; 174M with a password command). They are imported deferred
#: (`load_keyring`), and load when something uses them.
DEFERRED = frozenset(
    {
        "configparser",
        "importlib_metadata",
        "inspect",
        "more_itertools",
        "subprocess",
        "tempfile",
        "traceback",
        "urllib.request",
    }
)


def load_keyring() -> None:
    """Import keyring, with the modules named in `DEFERRED` that are not loaded yet
    deferred (`deferring`)."""
    if "keyring" in sys.modules:
        return
    with deferring(DEFERRED):
        import keyring.core  # noqa: F401


@contextlib.contextmanager
def deferring(names: frozenset[str]) -> Iterator[None]:
    """While in it, the modules named in `names` (those with Python source) are imported
    deferred: each is in sys.modules as usual, and its code runs when something first
    reads one of its attributes (`from urllib.request import x` does; `import
    urllib.request` alone does not), in whichever thread, once (`_Deferred`).

    Our own rather than the standard `importlib.util.LazyLoader`: on Python 3.11 its
    module runs its code at a second `import` of it, and reading an attribute while
    another thread runs that code can fail (CPython gh-114763, fixed in 3.12); the
    secret may be read in a background thread here."""
    import importlib.machinery

    class Finder:
        @staticmethod
        def find_spec(name: str, path: Any = None, target: Any = None) -> Any:
            if name not in names:
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
                return None  # (anything else is imported as usual)
            spec.loader = spec.loader_state = _DeferredLoader(spec.loader)  # type: ignore[assignment]
            return spec

    sys.meta_path.insert(0, Finder)
    try:
        yield
    finally:
        sys.meta_path.remove(Finder)


class _Deferred(types.ModuleType):
    """A module imported under `deferring` whose code has not run yet: it has the
    attributes the import system set (__name__, __spec__, __path__, ...); reading any
    other runs its code (`_realize`), after which it is a plain module."""

    def __getattr__(self, name: str) -> Any:
        _realize(self)
        if type(self) is _Deferred:  # its code runs in this thread: a circular import
            raise AttributeError(
                f"partially initialized module {self.__name__!r} has no attribute {name!r}"
            )
        return getattr(self, name)


class _DeferredLoader:
    """The loader of a deferred module: the module is made as usual, its code is not run
    (`_Deferred`)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        # taken to run the module's code: a thread that reads an attribute meanwhile
        # waits for it (one lock a module, as the import system's own)
        self.lock = threading.Lock()
        self.running: int | None = None  # the thread running it

    def create_module(self, spec: Any) -> None:
        return None  # (a plain module, as a source file's loader makes)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__class__ = _Deferred


def _realize(module: types.ModuleType) -> None:
    """Run a deferred module's code, once: a thread that comes meanwhile waits for it."""
    spec = module.__spec__
    deferred = None if spec is None else spec.loader_state
    if not isinstance(deferred, _DeferredLoader) or deferred.running == threading.get_ident():
        return  # (its code reads itself: running in this thread)
    with deferred.lock:
        if type(module) is not _Deferred:
            return  # run by another thread meanwhile
        deferred.running = threading.get_ident()
        spec.loader = module.__loader__ = deferred.real  # type: ignore[union-attr]
        try:
            deferred.real.exec_module(module)
        except BaseException:
            # as for a failed import: gone from sys.modules, the next import tries again
            if sys.modules.get(module.__name__) is module:
                del sys.modules[module.__name__]
            raise
        finally:
            deferred.running = None
            module.__class__ = types.ModuleType  # type: ignore[assignment]


def active_backend(paths: Paths | None = None) -> KeyringBackend:
    """The backend keyring uses in this process (resolved now if it is not yet)."""
    load_keyring()
    with _lock:
        import keyring
        import keyring.core

        current = getattr(keyring.core, "_keyring_backend", _UNKNOWN)
        if current is _UNKNOWN:  # a keyring whose internals changed: no shortcut
            return keyring.get_keyring()
        if current is not None:  # set_keyring, or resolved earlier in this process
            return keyring.get_keyring()
        if user_configured():
            return keyring.get_keyring()
        cache = (paths or Paths.from_env()).state_dir / CACHE_FILE
        fingerprint = _fingerprint()
        remembered = _load_remembered(cache, fingerprint)
        if remembered is not None:
            keyring.set_keyring(remembered)
            return remembered
        chosen = keyring.get_keyring()  # keyring's full search
        # taken again: the search's imports may have written __pycache__ directories
        _remember(cache, _fingerprint(), chosen)
        return chosen


def user_configured() -> bool:
    """Whether the user named a backend (keyring then loads exactly that one): by
    PYTHON_KEYRING_BACKEND, or keyringrc.cfg in keyring's config directory (found by
    keyring's own rule; `keyring.core` has loaded that module already)."""
    from keyring.util import platform_

    return (
        "PYTHON_KEYRING_BACKEND" in os.environ
        or (platform_.config_root() / "keyringrc.cfg").exists()
    )


def _fingerprint() -> str:
    def mtime(entry: str) -> int | None:
        try:
            return os.stat(entry).st_mtime_ns
        except OSError:
            return None

    try:
        cwd = os.getcwd()
    except OSError:  # removed under us
        cwd = ""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local/share")
    services = (
        "/usr/share/dbus-1/services",
        "/usr/local/share/dbus-1/services",
        os.path.join(data_home, "dbus-1/services"),
    )
    return repr(
        (
            sys.executable,
            sys.version,
            # the current directory ("" for python -c, its path for python -m): its
            # time changes with any file made there, and nobody installs a keyring
            # plugin into it
            [(entry, None if entry in ("", cwd) else mtime(entry)) for entry in sys.path],
            [os.environ.get(name) for name in _SESSION_VARS],
            [(d, mtime(d)) for d in services],
        )
    )


def _class_path(cls: type[KeyringBackend]) -> str | None:
    """`module.Class` when that name imports back to exactly this class."""
    module = sys.modules.get(cls.__module__)
    if module is None or "." in cls.__qualname__ or getattr(module, cls.__name__, None) is not cls:
        return None
    return f"{cls.__module__}.{cls.__name__}"


def _priority(cls: type[KeyringBackend]) -> float | None:
    """The backend's priority now, or None when it is not viable."""
    try:
        return float(cls.priority)
    except Exception:  # noqa: BLE001
        # keyring itself treats any exception from `priority` as "not viable"
        # (ExceptionTrap in KeyringBackend.viable): the same verdict here
        return None


def _members(backend: KeyringBackend) -> list[str] | None:
    """What to remember of the search's choice: one backend's class path, or the class
    paths of a chain's members (highest priority first); None when not worth it."""
    from keyring.backends import chainer, fail, null

    if isinstance(backend, (fail.Keyring, null.Keyring)):
        return None
    if isinstance(backend, chainer.ChainerBackend):
        classes = [type(member) for member in backend.backends]
        if len(classes) < 2:
            return None
    else:
        classes = [type(backend)]
        if (_priority(classes[0]) or 0) <= 0:  # (not viable: keyring would not choose it)
            return None
    names = [_class_path(cls) for cls in classes]
    return None if None in names else [n for n in names if n]


def _import_backend(name: str) -> type[KeyringBackend] | None:
    import importlib

    from keyring.backend import KeyringBackend
    from keyring.backends import chainer, fail, null

    module_name, _, class_name = name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        return None  # uninstalled or renamed: the full search finds what is there now
    if not isinstance(cls, type) or not issubclass(cls, KeyringBackend):
        return None
    if issubclass(cls, (chainer.ChainerBackend, fail.Keyring, null.Keyring)):
        return None
    return cls


def _load_remembered(cache: Path, fingerprint: str) -> KeyringBackend | None:
    try:
        header, written, remembered_fingerprint, names = cache.read_text(encoding="utf-8").split(
            "\n"
        )[:4]
        age = time.time() - float(written)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if header != _HEADER or remembered_fingerprint != fingerprint or not 0 <= age < MAX_AGE:
        return None
    ranked: list[tuple[float, type[KeyringBackend]]] = []
    for name in names.split():
        cls = _import_backend(name)
        priority = None if cls is None else _priority(cls)
        if cls is None or priority is None or priority <= 0:
            return None  # no longer there or viable (e.g. its daemon is gone): search
        ranked.append((priority, cls))
    if not ranked:
        return None
    try:
        members = [cls() for _, cls in sorted(ranked, key=lambda pc: pc[0], reverse=True)]
    except Exception:  # noqa: BLE001
        # keyring would fail making it the same way; its own search then decides
        # about this backend by its own rules (and says what is wrong)
        return None
    return members[0] if len(members) == 1 else _chain(members)


def _chain(members: list[KeyringBackend]) -> KeyringBackend:
    """keyring's chainer over exactly these members. Its own class would list them by
    running the whole search again (ChainerBackend.backends), so a subclass with the
    list fixed: it reads, writes and deletes exactly as the chainer does."""
    from keyring.backends import chainer

    class RememberedChain(chainer.ChainerBackend):
        viable = False  # never a candidate of a search
        backends = members

    return RememberedChain()  # type: ignore[no-untyped-call]


def _remember(cache: Path, fingerprint: str, backend: KeyringBackend) -> None:
    names = _members(backend)
    if names is None:
        with contextlib.suppress(OSError):
            cache.unlink(missing_ok=True)  # a choice made before no longer holds
        return
    text = f"{_HEADER}\n{int(time.time())}\n{fingerprint}\n{' '.join(names)}\n"
    tmp = cache.with_name(f"{CACHE_FILE}.{os.getpid()}.tmp")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, cache)
    except OSError:
        # only a shortcut: without it the next run searches again
        with contextlib.suppress(OSError):
            tmp.unlink()
