"""A per-run certificate authority and server certificates for the sandbox.

Clients verify the sandbox's certificates through the CA file, exactly as they
would a private CA: no test turns certificate checking off.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SandboxCerts:
    ca_file: Path  # PEM of the CA: what clients trust
    cert_file: Path  # server chain PEM (leaf + CA)
    key_file: Path  # server private key PEM


def make_certs(directory: Path, names: tuple[str, ...] = ("localhost",)) -> SandboxCerts:
    """Write a fresh CA and a leaf for `names` into `directory`."""
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="mailbag sandbox CA")
    # a CN as well as the SAN: older clients (fetchmail) check only the CN
    leaf = ca.issue_cert(*names, common_name=names[0], organization_name="mailbag sandbox")
    ca_file = directory / "ca.pem"
    cert_file = directory / "server.pem"
    key_file = directory / "server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    with cert_file.open("wb") as f:
        for blob in leaf.cert_chain_pems:
            f.write(blob.bytes())
    leaf.private_key_pem.write_to_path(str(key_file))
    key_file.chmod(0o600)
    return SandboxCerts(ca_file=ca_file, cert_file=cert_file, key_file=key_file)


def make_expired_cert(directory: Path, names: tuple[str, ...] = ("localhost",)) -> SandboxCerts:
    """A CA and a leaf that expired yesterday: for testing that clients refuse it."""
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="mailbag expired CA")
    now = dt.datetime.now(dt.UTC)
    leaf = ca.issue_cert(
        *names, not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1)
    )
    ca_file = directory / "expired-ca.pem"
    cert_file = directory / "expired.pem"
    key_file = directory / "expired.key"
    ca.cert_pem.write_to_path(str(ca_file))
    with cert_file.open("wb") as f:
        for blob in leaf.cert_chain_pems:
            f.write(blob.bytes())
    leaf.private_key_pem.write_to_path(str(key_file))
    return SandboxCerts(ca_file=ca_file, cert_file=cert_file, key_file=key_file)
