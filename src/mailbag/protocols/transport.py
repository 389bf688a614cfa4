"""The one I/O seam every protocol goes through: connect, TLS, STARTTLS, timeouts.

Certificate policy lives here and only here, so IMAP, POP3 and SMTP get the
same security: certificates are always verified (against the system store, or
the account's CA file), host names are always checked, and there is no switch
that turns verification off. Errors are translated into `NetworkError` /
`TLSError` with a plain-language hint.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import socket
import ssl
import threading
import time
from enum import StrEnum
from pathlib import Path

from mailbag.errors import MailbagError, NetworkError, TLSError
from mailbag.record import NamedTuple


class Security(StrEnum):
    """How the connection is protected."""

    SSL = "ssl"  # implicit TLS from the first byte (993, 995, 465)
    STARTTLS = "starttls"  # plaintext greeting, then upgrade; refusing to upgrade is fatal
    NONE = "none"  # only with an explicit --insecure


class Endpoint(NamedTuple):
    """A server to connect to and how."""

    host: str
    port: int
    security: Security
    ca_file: Path | None = None
    timeout: float = 30.0

    def __str__(self) -> str:
        return f"{self.host}:{self.port} ({self.security.value})"


def make_tls_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """A verifying client context: system roots, or exactly the given CA file."""
    if ca_file is not None:
        if not Path(ca_file).is_file():
            raise TLSError(
                f"CA file {ca_file} does not exist",
                hint="give the path of a PEM file with the server's CA certificate",
            )
        ctx = ssl.create_default_context(cafile=str(ca_file))
    else:
        ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _wire_host(host: str) -> str | bytes:
    """The host name as the resolver and TLS take it. An ASCII name goes as its bytes:
    as text both would pass it through the "idna" codec, which gives the same bytes but
    whose first use loads stringprep and unicodedata (over a millisecond, a noticeable
    share of a quick sync). Other names still get their IDNA encoding."""
    return host.encode("ascii") if host.isascii() else host


def _error(
    kind: type[NetworkError], endpoint: Endpoint, message: str, hint: str, cause: str
) -> NetworkError:
    """An error that names the server and a `cause` tests and diagnoses can match."""
    return kind(message, hint=hint, host=endpoint.host, port=endpoint.port, cause=cause)


def connect_tcp(endpoint: Endpoint) -> socket.socket:
    """Open a TCP connection, turning OS errors into explained `NetworkError`s."""
    where = f"{endpoint.host}:{endpoint.port}"
    try:
        # bytes work (they go to getaddrinfo as they are); typeshed only lists str
        address = (_wire_host(endpoint.host), endpoint.port)
        sock = socket.create_connection(address, timeout=endpoint.timeout)  # type: ignore[arg-type]
    except socket.gaierror as exc:
        message = f"cannot resolve host name {endpoint.host!r}: {exc.strerror}"
        hint = "check the server name for typos; is this machine online?"
        raise _error(NetworkError, endpoint, message, hint, "dns") from exc
    except TimeoutError as exc:
        message = f"connection to {where} timed out"
        hint = "check the port number; a firewall may be dropping it"
        raise _error(NetworkError, endpoint, message, hint, "timeout") from exc
    except ConnectionRefusedError as exc:
        message = f"connection to {where} refused: nothing listens there"
        hint = "check the port number and whether the service is enabled at the provider"
        raise _error(NetworkError, endpoint, message, hint, "refused") from exc
    except OSError as exc:
        cause = "unreachable" if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH) else "os"
        message = f"cannot connect to {where}: {exc.strerror or exc}"
        hint = "check the network connection and the server name"
        raise _error(NetworkError, endpoint, message, hint, cause) from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def wrap_tls(sock: socket.socket, endpoint: Endpoint, *, lazy_roots: bool = False) -> ssl.SSLSocket:
    """Do the TLS handshake on a connected socket, verifying the certificate.

    `lazy_roots`: without a CA file, look the system's root certificates up one by one
    in its hashed directory (see `_client_context`); the caller must then retry with
    the whole store when the certificate is reported untrusted (`open_stream` does)."""
    try:
        ctx = _client_context(endpoint.ca_file, lazy_roots=lazy_roots)
    except TLSError:
        sock.close()  # a missing CA file
        raise
    where = f"{endpoint.host}:{endpoint.port}"
    try:
        return ctx.wrap_socket(sock, server_hostname=_wire_host(endpoint.host))
    except ssl.SSLCertVerificationError as exc:
        sock.close()
        raise explain_certificate_error(exc, endpoint) from exc
    except ssl.SSLError as exc:
        sock.close()
        raise explain_handshake_error(exc, endpoint) from exc
    except TimeoutError as exc:
        sock.close()
        message = f"TLS handshake with {where} timed out"
        hint = "the port may expect STARTTLS (plain text first) rather than SSL/TLS"
        raise _error(TLSError, endpoint, message, hint, "handshake-timeout") from exc
    except OSError as exc:
        sock.close()
        message = f"connection to {where} closed during the TLS handshake"
        hint = "the port may expect STARTTLS rather than SSL/TLS"
        raise _error(TLSError, endpoint, message, hint, "handshake-closed") from exc


def explain_certificate_error(exc: ssl.SSLCertVerificationError, endpoint: Endpoint) -> TLSError:
    """Name the exact certificate problem and what the user can do about it."""
    code = exc.verify_code
    msg = exc.verify_message or str(exc)
    where = f"{endpoint.host}:{endpoint.port}"
    private_ca = (
        "if this is a private server, get its CA certificate and pass it with "
        "--ca-file PEM; never accept an unknown certificate blindly"
    )
    if code == 62 or "hostname mismatch" in msg.lower() or "IP address mismatch" in msg:
        message = f"the certificate of {where} is not valid for the name {endpoint.host!r}"
        hint = (
            "use the server name the certificate was issued for (your provider's "
            "documented host name), not an alias or IP address"
        )
        cause = "hostname-mismatch"
    elif code == 10:
        message = f"the certificate of {where} has expired"
        hint = "the server's administrator must renew it; mailbag will not connect meanwhile"
        cause = "expired"
    elif code in (18, 19, 20, 21):
        message = f"the certificate of {where} is not signed by a trusted authority ({msg})"
        hint, cause = private_ca, "untrusted"
    else:
        message = f"the certificate of {where} was rejected: {msg}"
        hint, cause = private_ca, "certificate"
    return TLSError(message, hint=hint, host=endpoint.host, port=endpoint.port, cause=cause)


def explain_handshake_error(exc: ssl.SSLError, endpoint: Endpoint) -> TLSError:
    reason = (exc.reason or "").upper()
    where = f"{endpoint.host}:{endpoint.port}"
    if "WRONG_VERSION_NUMBER" in reason or "RECORD_LAYER" in reason or "HTTP_REQUEST" in reason:
        message = f"{where} did not answer with TLS: it speaks plain text first"
        hint = (
            "this port expects STARTTLS: set the security to 'starttls' "
            "(or use the implicit-TLS port: 993 IMAP, 995 POP3, 465 SMTP)"
        )
        cause = "not-tls"
    elif "UNSUPPORTED_PROTOCOL" in reason or "VERSION" in reason:
        message = f"{where} only offers an outdated TLS version"
        hint = "mailbag requires TLS 1.2 or newer; ask the provider to upgrade"
        cause = "old-tls"
    else:
        message = f"TLS handshake with {where} failed: {exc.reason or exc}"
        hint = "check the port and security setting (SSL/TLS vs STARTTLS)"
        cause = "handshake"
    return TLSError(message, hint=hint, host=endpoint.host, port=endpoint.port, cause=cause)


def open_stream(endpoint: Endpoint) -> socket.socket:
    """Connect; for implicit TLS also do the handshake.

    For STARTTLS the caller speaks the protocol's upgrade command and then calls
    `wrap_tls` itself, after discarding anything buffered before the upgrade.
    A connection `open_early` started for an equal endpoint is taken instead, once.
    """
    early = _claim_early(endpoint)
    if early is not None:
        sock = early.take()
        if sock is not None:
            return sock
    return _open_now(endpoint)


def _open_now(endpoint: Endpoint) -> socket.socket:
    sock = connect_tcp(endpoint)
    if endpoint.security is not Security.SSL:
        return sock
    try:
        return wrap_tls(sock, endpoint, lazy_roots=True)
    except TLSError as exc:
        if not (exc.fields.get("cause") == "untrusted" and _lazy_roots_in_use(endpoint)):
            raise
    # the hashed directory may lack a root that the system's bundle file has: the
    # verdict is the whole store's, exactly as without the directory look-up
    return wrap_tls(connect_tcp(endpoint), endpoint)


# --- TLS contexts, made once per process ------------------------------------------------

#: hashed certificate file names (`openssl rehash`): SUBJECTHASH.N


@functools.cache
def _hashed_name() -> re.Pattern[str]:
    """A root's name in a hashed directory (compiled when first looked for)."""
    return re.compile(r"[0-9a-f]{8}\.\d+")


_contexts: dict[tuple[object, ...], ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def _system_roots() -> tuple[str | None, str | None]:
    """(bundle file, hashed directory) OpenSSL loads the system roots from, either None
    when absent (SSL_CERT_FILE and SSL_CERT_DIR taken into account)."""
    paths = ssl.get_default_verify_paths()
    return paths.cafile, paths.capath


def _hashed_dir(capath: str | None) -> bool:
    """A directory where OpenSSL can find a root by its subject hash, as on Debian,
    Ubuntu, Alpine and Arch (`update-ca-certificates` writes the same roots there and
    into the bundle file). Fedora's has none: the bundle is then read whole."""
    if capath is None or os.environ.get("SSL_CERT_FILE"):
        return False  # a bundle named on purpose: it is what counts
    try:
        with os.scandir(capath) as it:
            hashed = _hashed_name().fullmatch
            return any(hashed(e.name) for e in it)
    except OSError:
        return False


def _lazy_roots_in_use(endpoint: Endpoint) -> bool:
    return endpoint.ca_file is None and _hashed_dir(_system_roots()[1])


def _stamp(path: str | Path | None) -> tuple[int, int]:
    if path is None:
        return (0, 0)
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0)
    return (st.st_mtime_ns, st.st_size)


def _client_context(ca_file: Path | None, *, lazy_roots: bool = False) -> ssl.SSLContext:
    """`make_tls_context`, made once per process and reused by every connection (a
    context may serve many at once). Reading the system's bundle of ~150 roots takes
    25-45 ms, more than the rest of a quick sync's connection; with `lazy_roots` and a
    hashed directory of the same roots, OpenSSL reads only the root a certificate
    needs (about 1 ms). Kept per version of the files: an updated CA file or system
    store is read again."""
    if ca_file is not None:
        key: tuple[object, ...] = ("file", str(ca_file), *_stamp(ca_file))
    else:
        cafile, capath = _system_roots()
        lazy = lazy_roots and _hashed_dir(capath)
        key = ("system", lazy, cafile, capath, *_stamp(cafile), *_stamp(capath))
    with _contexts_lock:
        ctx = _contexts.get(key)
    if ctx is not None:
        return ctx
    if key[0] == "system" and key[1]:
        ctx = _lazy_system_context(str(key[3]))
    else:
        ctx = make_tls_context(ca_file)
    with _contexts_lock:
        return _contexts.setdefault(key, ctx)


def _lazy_system_context(capath: str) -> ssl.SSLContext:
    """What `ssl.create_default_context()` makes, with the roots looked up in `capath`
    when a certificate needs one instead of all read at once."""
    ctx = ssl.create_default_context(capath=capath)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


# --- connecting while the program is still loading ------------------------------------

#: an early connection older than this when claimed is closed and a fresh one opened: a
#: server may drop a connection that stays silent before logging in
EARLY_MAX_AGE = 10.0


class _Early:
    """One connection being opened in a background thread (see `open_early`)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.started = time.monotonic()
        self.done = threading.Event()
        self.sock: socket.socket | None = None
        self.error: MailbagError | OSError | None = None
        self.discarded = False
        self._lock = threading.Lock()

    def run(self) -> None:
        try:
            sock = _open_now(self.endpoint)
        except (MailbagError, OSError) as exc:  # raised where the connection is taken
            self.error = exc
        else:
            with self._lock:
                if self.discarded:
                    sock.close()
                else:
                    self.sock = sock
        finally:
            self.done.set()

    def take(self) -> socket.socket | None:
        """The connection (waiting for it), or its error raised here; None when too old
        (or when opening it failed unexpectedly: the caller then connects itself)."""
        self.done.wait()
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        sock, self.sock = self.sock, None
        if sock is not None and time.monotonic() - self.started > EARLY_MAX_AGE:
            sock.close()
            return None
        return sock

    def discard(self) -> None:
        with self._lock:
            self.discarded = True
            sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()


_early: dict[Endpoint, _Early] = {}
_early_lock = threading.Lock()


def open_early(endpoint: Endpoint) -> None:
    """Start connecting to `endpoint` now, in a background thread (TCP, and the TLS
    handshake for implicit TLS); the next `open_stream(endpoint)` of this process takes
    that connection, or raises what went wrong opening it, exactly as if it had
    connected then. For a command that connects only after loading its code (most
    of a short `mailbag sync`): the round trips and the handshake's crypto overlap the
    loading. `discard_early` closes what nobody took."""
    with _early_lock:
        if endpoint in _early:
            return
        early = _early[endpoint] = _Early(endpoint)
    threading.Thread(target=early.run, name="mailbag-connect", daemon=True).start()


def _claim_early(endpoint: Endpoint) -> _Early | None:
    if not _early:  # the usual case, without taking the lock
        return None
    with _early_lock:
        return _early.pop(endpoint, None)


def discard_early() -> None:
    """Close the early connections nobody took (one still opening closes when done)."""
    with _early_lock:
        pending = list(_early.values())
        _early.clear()
    for early in pending:
        early.discard()
