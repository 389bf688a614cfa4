"""Protocol transcripts for `--trace FILE`, with credentials redacted.

Clients call `sent()`/`received()` with the raw line and say when a line
carries a secret; the transcript writes `<redacted>` instead. A transcript that
writes nowhere (`Transcript(None)`) costs one attribute check per line.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO


@functools.cache
def _secret_patterns() -> tuple[re.Pattern[bytes], ...]:
    """Lines that carry credentials even when a client forgot to say so (compiled
    when a transcript is first written: most runs write none)."""
    return (
        re.compile(rb"^(\S+ (?:UID )?LOGIN) .*$", re.IGNORECASE),  # IMAP LOGIN user pass
        re.compile(rb"^(PASS) .*$", re.IGNORECASE),  # POP3
        re.compile(rb"^(\S+ AUTHENTICATE \S+) \S+.*$", re.IGNORECASE),  # IMAP initial response
        re.compile(rb"^(AUTH \S+) \S+.*$", re.IGNORECASE),  # SMTP/POP3 initial response
        re.compile(rb"^(APOP \S+) \S+$", re.IGNORECASE),
    )


class Transcript:
    def __init__(self, path: Path | str | None) -> None:
        # kept open for the whole session; closed by close()
        self._file: IO[bytes] | None = Path(path).open("ab") if path else None  # noqa: SIM115
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._file is not None

    def sent(self, proto: str, line: bytes, *, secret: bool = False) -> None:
        if self._file is not None:
            self._write(proto, b"C:", line, secret)

    def received(self, proto: str, line: bytes, *, secret: bool = False) -> None:
        if self._file is not None:
            self._write(proto, b"S:", line, secret)

    def _write(self, proto: str, direction: bytes, line: bytes, secret: bool) -> None:
        line = line.rstrip(b"\r\n")
        if secret:
            line = b"<redacted>"
        else:
            for pattern in _secret_patterns():
                if pattern.match(line):
                    line = pattern.sub(rb"\1 <redacted>", line)
                    break
        stamp = f"{time.time():.3f} {proto} ".encode()
        with self._lock:
            # (closed meanwhile: a connection still being opened in a helper thread,
            # `sync.early`, when the command ended without it)
            if self._file is not None:
                self._file.write(stamp + direction + b" " + line + b"\n")
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


NO_TRACE = Transcript(None)
