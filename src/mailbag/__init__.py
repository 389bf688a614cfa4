"""mailbag: an email client for the terminal and for scripts.

The public API is small on purpose; everything else is private to the package.
"""

from mailbag.errors import (
    AuthError,
    ConfigError,
    MailbagError,
    NetworkError,
    ProtocolError,
    StoreError,
    SyncError,
    TLSError,
)

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "ConfigError",
    "MailbagError",
    "NetworkError",
    "ProtocolError",
    "StoreError",
    "SyncError",
    "TLSError",
    "__version__",
]
