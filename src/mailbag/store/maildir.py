"""One Maildir folder on disk: unique names, tmp -> cur/new delivery, `:2,` flags.

The files are the user's mail and other programs (mutt, neomutt, notmuch, mu)
read and rename them, so this module keeps to the Maildir conventions:

- a message is written to `tmp/` first and renamed into `new/` (no flags yet,
  never seen by a reader) or `cur/` (with the `:2,FLAGS` info) when complete;
- the *key* of a message is its base name, the part before the `:`; other
  programs change the info part when they change flags, so a key plus a scan
  tells us the flags as they are now;
- no server UID ever goes into a file name (programs that move or rename files
  would lose or duplicate it); the key -> UID mapping lives in the index.

This module must never read a message into memory to deliver it and never
delete a file it did not find by key. Durability (fsync) is the caller's
choice so that callers can batch it; `fsync_file`/`fsync_dir` do the work.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import os
import re
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from mailbag.errors import StoreError
from mailbag.record import NamedTuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    import queue
    from typing import BinaryIO

__all__ = [
    "FLAG_LETTERS",
    "DirWatch",
    "Maildir",
    "MaildirEntry",
    "Unlinker",
    "flags_to_info",
    "fsync_dir",
    "fsync_file",
    "fsync_many",
    "info_to_flags",
    "is_own_tmp_name",
    "split_name",
    "sync_batch",
]

#: IMAP system flag -> Maildir info letter (letters must be stored sorted)
FLAG_LETTERS: dict[str, str] = {
    "\\Draft": "D",
    "\\Flagged": "F",
    "$Forwarded": "P",
    "\\Answered": "R",
    "\\Seen": "S",
    "\\Deleted": "T",
}
_LETTER_FLAGS = {v: k for k, v in FLAG_LETTERS.items()}

_counter = itertools.count()
# the PID for new names, read once (a getpid() system call per message shows in profiles)
_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork)
_mark_state = 0  # (seeded for the first new name)
_HOST = socket.gethostname().replace("/", "\\057").replace(":", "\\072") or "localhost"
# names we create: "<sec>.M<usec>P<pid>Q<n>R<hex>.<host>" (the R part marks ours)


@functools.cache
def _own_names() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The names `new_key` makes: (their start, the whole with the writer's process ID
    and host), compiled on first use: only a folder with something left in tmp/ needs
    them."""
    return (
        re.compile(r"^\d+\.M\d+P\d+Q\d+R[0-9a-f]{8}\."),
        re.compile(r"^\d+\.M\d+P(\d+)Q\d+R[0-9a-f]{8}\.(.*)$"),
    )


def _mark() -> int:
    """32 bits that mark a name as ours (uniqueness comes from time, PID and counter):
    a xorshift generator seeded once from os.urandom. (The `random` module costs about
    a millisecond to load, `secrets` a system call per name.)"""
    global _mark_state
    x = _mark_state or int.from_bytes(os.urandom(8), "little") | 1
    x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 7
    x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
    _mark_state = x
    return x & 0xFFFFFFFF


def flags_to_info(flags: Iterable[str]) -> str:
    """The `:2,` info letters for the flags Maildir can express, sorted."""
    return "".join(sorted({FLAG_LETTERS[f] for f in flags if f in FLAG_LETTERS}))


@functools.lru_cache(maxsize=256)
def _target(flags: frozenset[str]) -> tuple[str, str]:
    info = flags_to_info(flags)
    return ("cur", ":2," + info) if info else ("new", "")


@functools.lru_cache(maxsize=256)
def info_to_flags(info: str) -> frozenset[str]:
    """IMAP flags from Maildir info letters (unknown letters are ignored)."""
    return frozenset(_LETTER_FLAGS[c] for c in info if c in _LETTER_FLAGS)


def split_name(name: str) -> tuple[str, str]:
    """(key, info letters) of a file name in cur/ or new/."""
    key, sep, info = name.partition(":")
    if sep and info.startswith("2,"):
        return key, info[2:]
    return key, ""


def is_own_tmp_name(name: str) -> bool:
    """Whether a tmp/ file name has the shape of names this module makes."""
    return bool(_own_names()[0].match(name))


def writer_may_be_running(name: str) -> bool:
    """Whether the process that made this tmp/ file may still be writing it.

    Our names carry the writer's PID and host. A file from another host, or from
    another process on this host that is still alive (another mailbag command
    moving or saving a message right now), must not be taken for crash debris.
    """
    match = _own_names()[1].match(name)
    if match is None:
        return True
    pid, host = int(match.group(1)), match.group(2)
    if host != _HOST:
        return True
    if pid == os.getpid():
        return False  # this process: only a crash inside it can have left the file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    return True


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_many(paths: Sequence[Path]) -> None:
    """Make many files durable. Several threads fsync at once so that the file
    system can commit them in shared journal transactions (one fsync after
    another costs one journal commit each: that is mbsync's per-message cost)."""
    if len(paths) <= 2:
        for p in paths:
            fsync_file(p)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(16, len(paths))) as pool:
        for _ in pool.map(fsync_file, paths):
            pass


def _load_syncfs() -> Callable[[int], int] | None:
    """libc's syncfs(2) (Linux), or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    release = re.match(r"(\d+)\.(\d+)", os.uname().release)
    if release is None or (int(release.group(1)), int(release.group(2))) < (5, 8):
        return None  # before 5.8 syncfs did not report write-back errors
    import ctypes

    try:
        # the program's own symbols, libc's among them: no `ctypes.util.find_library`,
        # which loads subprocess, shutil and signal and runs ldconfig (~40M instructions)
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int

    def syncfs(fd: int) -> int:
        if fn(fd) != 0:
            return ctypes.get_errno()
        return 0

    return syncfs


_syncfs: Callable[[int], int] | bool | None = False  # False: not looked up yet

#: local file systems whose syncfs(2) writes out every dirty file with its metadata;
#: others (FUSE, network file systems, overlays) may return before the data is safe
#: in the backing store, so they get an fsync per file
_SYNCFS_TRUSTED = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "tmpfs", "zfs"})
_trusted_devices: dict[int, bool] = {}


def mount_type(st_dev: int) -> str | None:
    """The file system type of the mount with device `st_dev` (Linux), if found."""
    want = f"{os.major(st_dev)}:{os.minor(st_dev)}"
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[2] == want and "-" in fields[3:]:
                    at = fields.index("-", 3)
                    return fields[at + 1] if at + 1 < len(fields) else None
    except OSError:
        return None
    return None


def _syncfs_trusted(st_dev: int) -> bool:
    trusted = _trusted_devices.get(st_dev)
    if trusted is None:
        trusted = _trusted_devices[st_dev] = mount_type(st_dev) in _SYNCFS_TRUSTED
    return trusted


def sync_batch(directory: Path | str, files: Sequence[Path | str]) -> None:
    """Make `files` (all created in `directory`) and their directory entries durable.

    On Linux (5.8 and later: since then syncfs reports write-back errors as fsync
    does) and a local file system (see `_SYNCFS_TRUSTED`), one syncfs(2) of the file
    system holding `directory` does it for the whole batch: the kernel writes the
    batch out in one go instead of one fsync per file (each fsync pays its own device
    flush). Elsewhere: fsync of every file (in threads, see `fsync_many`), then of
    the directory.
    """
    global _syncfs
    if not files:
        return
    if _syncfs is False:
        _syncfs = _load_syncfs()
    if callable(_syncfs):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            err = _syncfs(fd) if _syncfs_trusted(os.fstat(fd).st_dev) else errno.ENOSYS
        finally:
            os.close(fd)
        if err == 0:
            return
        if err not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(err, f"syncfs: {os.strerror(err)}", str(directory))
    fsync_many([Path(f) for f in files])
    fsync_dir(Path(directory))


def fsync_dir(path: Path | str) -> None:
    """Make renames and creations in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class MaildirEntry(NamedTuple):
    """A message file as found on disk."""

    key: str
    subdir: str  # "new" or "cur"
    name: str  # the file name in subdir (key plus info)
    root: Path

    @property
    def path(self) -> Path:
        return self.root / self.subdir / self.name

    @property
    def file(self) -> str:
        """`path` as a string (cheaper where thousands of files are renamed or removed)."""
        return f"{self.root}/{self.subdir}/{self.name}"

    @property
    def flags(self) -> frozenset[str]:
        return info_to_flags(split_name(self.name)[1])


class Maildir:
    """The folder at `root` (with `cur`, `new`, `tmp` inside)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Maildir({str(self.root)!r})"

    # --- structure -------------------------------------------------------------------

    def exists(self) -> bool:
        return all((self.root / d).is_dir() for d in ("cur", "new", "tmp"))

    def create(self) -> None:
        try:
            for d in ("cur", "new", "tmp"):
                (self.root / d).mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StoreError(
                f"cannot create Maildir {self.root}: {exc.strerror or exc}",
                hint="check that the mail directory is writable and the disk not full",
                path=str(self.root),
            ) from exc

    # --- writing ----------------------------------------------------------------------

    @staticmethod
    def new_key() -> str:
        now = time.time()
        sec = int(now)
        usec = int((now - sec) * 1_000_000)
        # uniqueness comes from time, PID and counter; the random part only marks the
        # name as ours (seeded from os.urandom; secrets costs a system call per name)
        return f"{sec}.M{usec}P{_pid}Q{next(_counter)}R{_mark():08x}.{_HOST}"

    def tmp_path(self, key: str) -> Path:
        return self.root / "tmp" / key

    def open_tmp(self, key: str | None = None) -> tuple[str, BinaryIO]:
        """Create a new file in tmp/; returns (key, file open for binary writing)."""
        key = key or self.new_key()
        try:
            f = self.tmp_path(key).open("xb")
        except FileNotFoundError:
            self.create()
            f = self.tmp_path(key).open("xb")
        except OSError as exc:
            raise StoreError(
                f"cannot write in {self.root / 'tmp'}: {exc.strerror or exc}",
                hint="check that the mail directory is writable and the disk not full",
            ) from exc
        return key, f

    @staticmethod
    def target_for(flags: Iterable[str]) -> tuple[str, str]:
        """(subdir, suffix) a message with these flags is delivered to.

        Unseen mail without flags goes to new/ (readers show it as new); the
        rest to cur/ with its info, which is what Maildir readers expect.
        """
        info = flags_to_info(flags)
        if not info:
            return "new", ""
        return "cur", ":2," + info

    def deliver(self, key: str, flags: Iterable[str]) -> MaildirEntry:
        """Rename tmp/KEY into new/ or cur/. The caller fsyncs what it needs."""
        subdir, suffix = self.target_for(flags)
        name = key + suffix
        try:
            os.rename(self.tmp_path(key), self.root / subdir / name)
        except OSError as exc:
            raise StoreError(
                f"cannot deliver {key} into {self.root}: {exc.strerror or exc}",
                hint="check that the mail directory is writable",
                path=str(self.root),
            ) from exc
        return MaildirEntry(key, subdir, name, self.root)

    def deliver_many(self, items: Iterable[tuple[str, frozenset[str]]]) -> set[str]:
        """`deliver` for a batch of (key, flags); returns the directories renamed into."""
        root = str(self.root)
        tmp = os.path.join(root, "tmp")
        dirs: set[str] = set()
        for key, flags in items:
            subdir, suffix = _target(flags)
            target = os.path.join(root, subdir)
            try:
                os.rename(os.path.join(tmp, key), f"{target}/{key}{suffix}")
            except OSError as exc:
                raise StoreError(
                    f"cannot deliver {key} into {self.root}: {exc.strerror or exc}",
                    hint="check that the mail directory is writable",
                    path=root,
                ) from exc
            dirs.add(target)
        return dirs

    # --- reading ----------------------------------------------------------------------

    def scan(self) -> dict[str, MaildirEntry]:
        """key -> entry for every message in new/ and cur/ (one listing each)."""
        out: dict[str, MaildirEntry] = {}
        for subdir in ("new", "cur"):
            try:
                names = os.listdir(self.root / subdir)
            except FileNotFoundError:
                continue
            for name in names:
                if name.startswith("."):
                    continue
                key = split_name(name)[0]
                out[key] = MaildirEntry(key, subdir, name, self.root)
        return out

    def tmp_names(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.root / "tmp") if not n.startswith(".")]
        except FileNotFoundError:
            return []

    def find(self, key: str, hint: MaildirEntry | None = None) -> MaildirEntry | None:
        """Locate a message by key; `hint` (a previous location) makes it one stat."""
        if hint is not None and hint.path.exists():
            return hint
        new = self.root / "new" / key
        if new.exists():
            return MaildirEntry(key, "new", key, self.root)
        try:
            with os.scandir(self.root / "cur") as it:
                for e in it:
                    if e.name == key or e.name.startswith(key + ":"):
                        return MaildirEntry(key, "cur", e.name, self.root)
        except FileNotFoundError:
            return None
        return None

    def iter_entries(self) -> Iterator[MaildirEntry]:
        yield from self.scan().values()

    # --- changing ---------------------------------------------------------------------

    def set_flags(self, entry: MaildirEntry, flags: Iterable[str]) -> MaildirEntry:
        """Rename the file so its info says `flags`; keeps letters we do not know.

        A message whose flags are set is no longer new, so it moves to cur/
        (as every Maildir reader does when it has seen a message).
        """
        _, old_info = split_name(entry.name)
        foreign = "".join(c for c in old_info if c not in _LETTER_FLAGS)
        info = "".join(sorted(set(flags_to_info(flags)) | set(foreign)))
        name = f"{entry.key}:2,{info}"
        if entry.subdir == "cur" and name == entry.name:
            return entry
        try:
            os.rename(entry.file, f"{self.root}/cur/{name}")
        except OSError as exc:
            raise StoreError(
                f"cannot rename {entry.path}: {exc.strerror or exc}",
                hint="another program may have moved the file; run `mailbag sync` again",
            ) from exc
        return MaildirEntry(entry.key, "cur", name, self.root)

    def remove(self, entry: MaildirEntry) -> None:
        try:
            os.unlink(entry.file)
        except FileNotFoundError:
            pass  # already gone: that is what was asked
        except OSError as exc:
            raise StoreError(f"cannot remove {entry.path}: {exc.strerror or exc}") from exc

    def discard(self, entry: MaildirEntry) -> str | None:
        """Take the message out of the folder, for an `Unlinker` to remove: renamed into
        tmp/ under a new name of ours, where no Maildir reader looks and where
        `Store.recover` removes what a crash left behind. A rename only changes two
        directories; an unlink also frees the file's blocks, about ten times as long
        for a typical message, and that part can then run off the sync's path.
        Returns the new path, or None when the file was removed here at once
        (already gone, or no tmp/ to rename into)."""
        target = os.path.join(self.root, "tmp", self.new_key())
        try:
            if not stat.S_ISREG(os.lstat(entry.file).st_mode):
                raise IsADirectoryError  # (only a message file is taken out this way)
            os.rename(entry.file, target)
        except OSError:
            # gone already, not a file, or tmp/ missing or elsewhere: removed the plain
            # way, which says what went wrong when it is there and cannot be removed
            self.remove(entry)
            return None
        return target


#: removes files in a process of its own (see `Unlinker`); None: not on this system
_RM = next((p for p in ("/bin/rm", "/usr/bin/rm") if os.path.exists(p)), None)


class Unlinker:
    """Removes files that are out of every Maildir folder already (`Maildir.discard`)
    while other work goes on. `put` collects them, `flush` starts removing what was
    put, `close` (or `flush` and `close`) waits until all are removed. A file it could
    not remove stays in its tmp/, where `Store.recover` finds it at the next sync of
    the folder.

    Where there is an `rm` program (`posix_spawn`), each batch is removed by one: a
    Python thread doing the unlinks gets the interpreter lock back after each one only
    when the busy main thread lets go of it (up to 5 ms), so the removals stalled
    while the sync computed (200 removals: 50-90 ms instead of 30); a process of its
    own frees the blocks truly alongside. Elsewhere a helper thread does it."""

    BATCH = 500  # paths per `rm` (well within any system's argument limit)
    #: `close` starts the last `rm` but does not wait for the ones at work (the process
    #: ends right after: an `rm` goes on by itself, as after a crash). The files are out
    #: of their folders already, durably, and only their blocks are still to free: ~200
    #: files took an `rm` 50-170 ms here when the sync's own directory and index flushes
    #: held the file system's journal, which the sync then waited for.
    leave_running = False
    #: paths `flush` starts an `rm` for; fewer wait for more, or for `detach`/`close`:
    #: an `rm` costs ~1 ms of CPU to start, as much as removing 50-100 small files
    FLUSH_MIN = 250

    def __init__(self) -> None:
        self._batch: list[str] = []
        self._children: list[int] = []
        self._paths: queue.SimpleQueue[str | None] | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, path: str) -> None:
        """Remove `path` soon (callable from any thread)."""
        with self._lock:
            self._batch.append(path)
            if len(self._batch) >= self.BATCH:
                self._start()

    def flush(self) -> None:
        """Start removing what was put so far (without waiting for it), when that is
        enough to be worth a process of its own (`FLUSH_MIN`): the few removals of a
        typical sync go together, in one `rm` at its end (`detach`, `close`)."""
        with self._lock:
            if len(self._batch) >= self.FLUSH_MIN:
                self._start()

    def _start(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        if _RM is not None and hasattr(os, "posix_spawn"):
            quiet = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_WRONLY, 0) for fd in (1, 2)]
            try:
                pid = os.posix_spawn(_RM, ["rm", "-f", "--", *batch], {}, file_actions=quiet)
            except OSError:
                pass  # (removed in a thread below)
            else:
                self._children.append(pid)
                return
        if self._paths is None:
            import queue  # (only when there is something to remove: start-up time counts)

            self._paths = queue.SimpleQueue()
        for path in batch:
            self._paths.put(path)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mailbag-unlink", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        assert self._paths is not None
        while (path := self._paths.get()) is not None:
            with contextlib.suppress(OSError):  # (left for `Store.recover`, see above)
                os.unlink(path)

    def detach(self) -> None:
        """Make sure what was put is removed even if this process dies now: an `rm`
        goes on by itself; removals left to the thread are waited for."""
        with self._lock:
            self._start()
            thread, self._thread = self._thread, None
            if thread is not None and self._paths is not None:
                self._paths.put(None)
        if thread is not None:
            thread.join()

    def close(self) -> None:
        """Remove what was put, waiting until it is removed (but see `leave_running`)."""
        with self._lock:
            self._start()
            children, self._children = self._children, []
            if self.leave_running and self._thread is None:
                return  # (the `rm`s finish by themselves; nothing here waits for them)
            thread, self._thread = self._thread, None
            if thread is not None and self._paths is not None:
                self._paths.put(None)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        if thread is not None:
            thread.join()


#: inotify(7) event bits (Linux)
_IN_MOVED_FROM = 0x40
_IN_MOVED_TO = 0x80
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_UNMOUNT = 0x2000
_IN_Q_OVERFLOW = 0x4000
_IN_IGNORED = 0x8000
_IN_ONLYDIR = 0x01000000
_IN_ADDED = _IN_MOVED_TO | _IN_CREATE
_IN_REMOVED = _IN_MOVED_FROM | _IN_DELETE
_IN_BROKEN = _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_UNMOUNT | _IN_IGNORED


class DirWatch:
    """The names added to and removed from some directories since each was watched, as
    the kernel reports them (inotify, Linux): what changed in a Maildir's cur/ and new/,
    without listing them again. `DirWatch.open()` is None where there is no inotify.

    One instance (one descriptor) serves many directories: the kernel allows each user
    only a few instances (128 by default) but many watches. Events are read without
    blocking whenever a watch is added or changes are asked for, so the kernel's queue
    (16,384 events by default) does not overflow; when it does, or a directory itself
    is moved or removed, `changes` says it does not know (None)."""

    def __init__(self, fd: int, add: Callable[[int, bytes, int], int]) -> None:
        import struct

        self._fd = fd
        self._add = add
        self._header = struct.Struct("iIII").unpack_from  # wd, mask, cookie, name length
        self._events: dict[int, list[tuple[bool, str]]] = {}  # wd -> (added?, name)
        self._broken: set[int] = set()
        self._overflow = False
        self._lock = threading.Lock()  # (the folders of a sync are synced in threads)

    @classmethod
    def open(cls) -> DirWatch | None:
        if not sys.platform.startswith("linux"):
            return None
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            init, add = libc.inotify_init1, libc.inotify_add_watch
        except (OSError, AttributeError):
            return None
        init.argtypes, init.restype = [ctypes.c_int], ctypes.c_int
        add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        add.restype = ctypes.c_int
        fd = init(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            return None  # (EMFILE: the user's instances are all taken)
        return cls(fd, add)

    def watch(self, directory: Path | str) -> int | None:
        """Start reporting the changes in `directory`; its handle, or None when the
        kernel refuses (ENOSPC: the user's watches are all taken)."""
        with self._lock:
            self._read()
            wd = self._add(self._fd, os.fsencode(directory), _WATCHED)
            if wd < 0:
                return None
            # (the same directory watched again: its changes count from now)
            self._events[wd] = []
            self._broken.discard(wd)
            return wd

    def changes(self, wd: int) -> list[tuple[bool, str]] | None:
        """(added?, name) for every name added to or removed from the directory since
        `watch`, in order; None when that is not known (also once closed)."""
        with self._lock:
            if self._fd < 0:
                return None  # (closed: what came since is not known)
            self._read()
            if self._overflow or wd in self._broken or wd not in self._events:
                return None
            return list(self._events[wd])

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            at = 0
            while at + 16 <= len(data):
                wd, mask, _cookie, size = self._header(data, at)
                raw = data[at + 16 : at + 16 + size].rstrip(b"\0")
                at += 16 + size
                if mask & _IN_Q_OVERFLOW:
                    self._overflow = True
                elif mask & _IN_BROKEN:
                    self._broken.add(wd)
                elif wd in self._events:
                    self._events[wd].append((bool(mask & _IN_ADDED), os.fsdecode(raw)))

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)  # (it waits for the kernel to free the watches)
                self._fd = -1


_WATCHED = _IN_ADDED | _IN_REMOVED | _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_ONLYDIR
