"""Trusting the system's roots without reading all of them: against the sandbox Dovecot.

Without a CA file, a connection looks the root it needs up in the system's hashed
certificate directory (SSL_CERT_DIR here) instead of reading the whole bundle; when
that directory lacks a root, the whole store decides, as before. Contexts are made
once per process and per version of their files."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbag.errors import TLSError
from mailbag.protocols import transport
from mailbag.protocols.transport import Endpoint, Security, open_stream
from mailbag.sandbox import Sandbox


def _hashed_copy(pem: Path, directory: Path) -> None:
    """Put `pem` into `directory` under its subject hash, as `openssl rehash` does."""
    out = subprocess.run(
        ["openssl", "x509", "-subject_hash", "-noout", "-in", str(pem)],
        capture_output=True,
        text=True,
        check=True,
    )
    shutil.copy(pem, directory / f"{out.stdout.strip()}.0")


@pytest.fixture
def other_ca(tmp_path: Path) -> Path:
    """A root that signed nothing the sandbox serves."""
    import trustme

    path = tmp_path / "other-ca.pem"
    trustme.CA(organization_name="unrelated test root").cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Endpoint]]:
    """Fresh contexts for the test, and every TCP connection made."""
    monkeypatch.setattr(transport, "_contexts", {})
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    seen: list[Endpoint] = []
    real = transport.connect_tcp

    def counting(endpoint: Endpoint) -> socket.socket:
        seen.append(endpoint)
        return real(endpoint)

    monkeypatch.setattr(transport, "connect_tcp", counting)
    yield seen


def _system_endpoint(sb: Sandbox) -> Endpoint:
    return Endpoint(sb.host, sb.ports.imaps, Security.SSL, None, timeout=10)


def test_the_needed_root_is_looked_up_in_the_hashed_directory(
    sandbox: Sandbox, tmp_path: Path, attempts: list[Endpoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    roots = tmp_path / "certs"
    roots.mkdir()
    _hashed_copy(sandbox.ca_file, roots)
    monkeypatch.setenv("SSL_CERT_DIR", str(roots))
    open_stream(_system_endpoint(sandbox)).close()
    open_stream(_system_endpoint(sandbox)).close()
    assert len(attempts) == 2  # one handshake each, no retry
    ((key, ctx),) = transport._contexts.items()  # one context for both
    assert key[:2] == ("system", True)
    # the bundle file was not read: the store holds the one root the handshake needed
    assert ctx.cert_store_stats()["x509_ca"] == 1


def test_a_root_only_the_bundle_has_is_still_trusted(
    sandbox: Sandbox,
    tmp_path: Path,
    other_ca: Path,
    attempts: list[Endpoint],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    roots = tmp_path / "certs"
    roots.mkdir()
    _hashed_copy(other_ca, roots)
    # a system whose bundle holds a root its directory lacks
    monkeypatch.setenv("SSL_CERT_DIR", str(roots))
    monkeypatch.setenv("SSL_CERT_FILE", str(sandbox.ca_file))
    monkeypatch.setattr(transport, "_hashed_dir", lambda capath: capath == str(roots))
    open_stream(_system_endpoint(sandbox)).close()
    assert len(attempts) == 2  # the directory's verdict, then the whole store's


def test_an_untrusted_server_is_refused_by_the_whole_store_too(
    sandbox: Sandbox,
    tmp_path: Path,
    other_ca: Path,
    attempts: list[Endpoint],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    roots = tmp_path / "certs"
    roots.mkdir()
    _hashed_copy(other_ca, roots)
    monkeypatch.setenv("SSL_CERT_DIR", str(roots))
    with pytest.raises(TLSError) as err:
        open_stream(_system_endpoint(sandbox))
    assert err.value.fields["cause"] == "untrusted"
    assert len(attempts) == 2


def test_a_named_bundle_is_read_whole(
    sandbox: Sandbox,
    tmp_path: Path,
    other_ca: Path,
    attempts: list[Endpoint],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    roots = tmp_path / "certs"
    roots.mkdir()
    _hashed_copy(other_ca, roots)
    monkeypatch.setenv("SSL_CERT_DIR", str(roots))
    monkeypatch.setenv("SSL_CERT_FILE", str(sandbox.ca_file))
    open_stream(_system_endpoint(sandbox)).close()
    assert len(attempts) == 1
    ((key, _),) = transport._contexts.items()
    assert key[:2] == ("system", False)


def test_a_ca_file_context_is_made_once_per_version_of_the_file(
    sandbox: Sandbox, tmp_path: Path, attempts: list[Endpoint]
) -> None:
    ca = tmp_path / "ca.pem"
    shutil.copy(sandbox.ca_file, ca)
    endpoint = Endpoint(sandbox.host, sandbox.ports.imaps, Security.SSL, ca)
    open_stream(endpoint).close()
    open_stream(endpoint).close()
    assert len(transport._contexts) == 1
    st = ca.stat()
    os.utime(ca, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # replaced
    open_stream(endpoint).close()
    assert len(transport._contexts) == 2
    ca.unlink()
    with pytest.raises(TLSError) as err:
        open_stream(endpoint)
    assert "does not exist" in err.value.message
