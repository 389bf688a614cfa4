"""The one place the account test asks the provider table for facts.

Kept behind functions so the test does not depend on the table's shape.
"""

from __future__ import annotations


def enable_settings_url(email: str, protocol: str) -> str | None:
    """Where the provider lets users turn `protocol` (imap/pop3) access on, if known."""
    return None
