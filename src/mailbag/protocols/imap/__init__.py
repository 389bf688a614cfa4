"""IMAP: the pure response parser and a thin, pipelining, streaming client."""

from mailbag.protocols.imap.client import (
    AppendResult,
    BodySink,
    CopyResult,
    FetchStream,
    FlagStream,
    ImapClient,
    Pending,
    SelectResult,
    StoreResult,
)
from mailbag.protocols.imap.mutf7 import decode_mailbox, encode_mailbox
from mailbag.protocols.imap.parser import (
    Address,
    Envelope,
    FetchResult,
    MailboxInfo,
    MailboxStatus,
    SearchResult,
    StatusResponse,
    StreamedLiteral,
    UidSet,
    format_sequence_set,
)

__all__ = [
    "Address",
    "AppendResult",
    "BodySink",
    "CopyResult",
    "Envelope",
    "FetchResult",
    "FetchStream",
    "FlagStream",
    "ImapClient",
    "MailboxInfo",
    "MailboxStatus",
    "Pending",
    "SearchResult",
    "SelectResult",
    "StatusResponse",
    "StoreResult",
    "StreamedLiteral",
    "UidSet",
    "decode_mailbox",
    "encode_mailbox",
    "format_sequence_set",
]
