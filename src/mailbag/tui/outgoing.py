"""What the compose screen does, as plain values and library calls (no widgets).

New messages, replies and forwards are built by `mailbag.message.compose` (the
same builders as `mailbag compose/reply/forward`: quoting, In-Reply-To and
References, Re:/Fwd:, no own address in a reply-all, header-injection checks).
Sending and saving drafts go through the outbox (`mailbag.sync.outbox`), so a
message is on disk before any network work and an offline send waits there;
`send` and `flush` are the only network calls and run in worker threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from mailbag.errors import MailbagError, UsageError
from mailbag.paths import Paths
from mailbag.textsafe import clean_terminal

if TYPE_CHECKING:
    from mailbag.config import Config
    from mailbag.message.addresses import Address
    from mailbag.message.compose import Attachment, Draft
    from mailbag.store.contacts import KnownAddress
    from mailbag.sync.outbox import SendReport

Kind = Literal["new", "reply", "reply-all", "forward", "forward-attached", "draft"]

__all__ = ["Kind", "Outgoing", "Queued", "Start", "human_size", "summarize"]


@dataclass(frozen=True)
class Start:
    """A message about to be written: which account, what it starts from."""

    kind: Kind
    account: str
    draft: Draft
    #: the index row of the message a reply answers (flagged \\Answered once sent)
    answers: int | None = None
    #: the saved draft this continues (removed once the new version is in the outbox)
    replaces: str | None = None


@dataclass(frozen=True)
class Queued:
    """A message handed to the outbox (to send, or to save in Drafts)."""

    id: str
    subject: str
    draft: bool


class Outgoing:
    """Compose, reply, forward, complete addresses, queue and send, for one mailbag home."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    def _config(self) -> Config:
        from mailbag.config import load_config

        return load_config(self.paths)

    def account_names(self) -> list[str]:
        return list(self._config().accounts)

    def default_account(self, preferred: str | None = None) -> str:
        config = self._config()
        if preferred is not None and preferred in config.accounts:
            return preferred
        return config.account(None).name

    def from_address(self, account: str) -> Address:
        from mailbag.message.identity import from_address

        return from_address(self._config().account(account))

    # --- starting points ----------------------------------------------------------------

    def new(self, account: str | None = None) -> Start:
        from mailbag.message.compose import Draft

        name = self.default_account(account)
        return Start("new", name, Draft(from_=self.from_address(name)))

    def reply(self, message_id: str, *, reply_all: bool = False) -> Start:
        from mailbag.message.compose import reply_draft
        from mailbag.message.identity import identities

        config = self._config()
        original, message_account, row = self._original(message_id)
        name = self.default_account(message_account)
        draft = reply_draft(
            original,
            identities=identities(config),
            default_from=self.from_address(name),
            reply_all=reply_all,
        )
        return Start("reply-all" if reply_all else "reply", name, draft, answers=row)

    def forward(self, message_id: str, *, as_attachment: bool = False) -> Start:
        """Forward inline (text quoted, attachments kept) or `as_attachment`: the
        original's exact bytes as a message/rfc822 part (`Draft.forwarded`)."""
        from mailbag.message.compose import forward_draft

        original, message_account, _ = self._original(message_id)
        name = self.default_account(message_account)
        draft = forward_draft(original, from_=self.from_address(name), as_attachment=as_attachment)
        return Start("forward-attached" if as_attachment else "forward", name, draft)

    def resume(self, message_id: str) -> Start:
        """Continue a draft saved earlier (a message in a Drafts folder)."""
        from mailbag.message.compose import draft_from_message
        from mailbag.message.identity import identities
        from mailbag.store.index import Store

        with Store.open(self.paths) as store:
            message = store.lookup(message_id)
            folder = store.folder_by_id(message.folder_id)
            if folder.role != "drafts" and "\\Draft" not in message.flags:
                raise UsageError(
                    "only drafts can be continued",
                    hint="open the Drafts folder; r, a and f answer or forward other mail",
                )
            data = store.read_bytes(message)
        name = self.default_account(message.account)
        draft = draft_from_message(
            data, identities=identities(self._config()), default_from=self.from_address(name)
        )
        return Start("draft", name, draft, replaces=message_id)

    def _original(self, message_id: str) -> tuple[bytes, str, int]:
        from mailbag.store.index import Store

        with Store.open(self.paths) as store:
            message = store.lookup(message_id)
            return store.read_bytes(message), message.account, message.id

    # --- address completion -------------------------------------------------------------

    def complete(self, prefix: str, *, limit: int = 6) -> list[KnownAddress]:
        """Known addresses for `prefix`, best first, never the user's own."""
        from mailbag.message.identity import identities
        from mailbag.store.contacts import known_addresses
        from mailbag.store.index import Store

        if not self.paths.index_file.exists():
            return []
        own = [a.addr_spec for a in identities(self._config())]
        with Store.open(self.paths, hooks=False) as store:
            return known_addresses(store, prefix, limit=limit, exclude=own)

    # --- finishing ------------------------------------------------------------------------

    @staticmethod
    def addresses(text: str, what: str) -> list[Address]:
        """The strict parse of a To/Cc/Bcc field (raises AddressError with the reason)."""
        from mailbag.message.addresses import parse_address_list

        return parse_address_list(text, what=what)

    @staticmethod
    def attachment(path: str) -> Attachment:
        """Read a file to attach (raises UsageError: missing, a folder, unreadable, too big)."""
        from pathlib import Path

        from mailbag.message.compose import Attachment

        if not path.strip():
            raise UsageError("no file chosen")
        return Attachment.from_path(Path(path.strip()))

    def finish(
        self,
        start: Start,
        *,
        account: str,
        to: str,
        cc: str,
        bcc: str,
        subject: str,
        body: str,
        attachments: Sequence[Attachment],
        keep_forwarded: bool = True,
        for_draft: bool = False,
    ) -> Draft:
        """The draft as the user wrote it; raises UsageError for what is unusable.

        `keep_forwarded` False drops the forwarded original (the user removed it from
        the attachments); it is never changed otherwise."""
        from mailbag.message.compose import check_user_text

        from_ = start.draft.from_ if account == start.account else self.from_address(account)
        draft = replace(
            start.draft,
            from_=from_,
            to=self.addresses(to, "To"),
            cc=self.addresses(cc, "Cc"),
            bcc=self.addresses(bcc, "Bcc"),
            subject=check_user_text(subject, "subject"),
            body=body,
            attachments=list(attachments),
            forwarded=start.draft.forwarded if keep_forwarded else None,
        )
        if not for_draft and not draft.recipients:
            raise UsageError("no recipient", hint="write at least one address in To, Cc or Bcc")
        return draft

    def queue(self, start: Start, account: str, draft: Draft, *, as_draft: bool = False) -> Queued:
        """Build the message (all safety checks) and write it to the outbox."""
        from mailbag.message.compose import build
        from mailbag.store.outbox import Outbox
        from mailbag.sync.outbox import enqueue, enqueue_draft

        acct = self._config().account(account)
        outbox = Outbox.open(self.paths)
        if as_draft:
            record = enqueue_draft(outbox, acct, build(draft, for_draft=True))
        else:
            answers = start.answers if account == start.account else None
            record = enqueue(outbox, acct, build(draft), answers=answers)
        if start.replaces is not None:
            self._drop_old_draft(start.replaces)
        return Queued(record.id, record.subject, as_draft)

    def _drop_old_draft(self, message_id: str) -> None:
        # the new version is safe in the outbox; the old one goes for good (the next
        # sync deletes it on the server), not to Trash
        from mailbag.store.actions import delete
        from mailbag.store.index import Store

        with Store.open(self.paths) as store:
            message = store.get(int(message_id))
            if message is not None and not message.gone:
                delete(store, message, expunge=True)

    # --- network (worker threads only) -------------------------------------------------

    def flush(
        self, ids: Sequence[str] | None = None, *, wait: float = 30.0, quiet_if_busy: bool = False
    ) -> list[str]:
        """Send what the outbox holds (or exactly `ids`); one status line per message.

        `quiet_if_busy`: say nothing when another flush holds the outbox (the
        background sync, while a message of the user's is being sent)."""
        from mailbag.store.outbox import OutboxLocked
        from mailbag.sync.sending import send_outbox

        try:
            result = send_outbox(
                self.paths, self._config(), ids=ids, respect_backoff=False, wait=wait
            )
        except OutboxLocked:
            if quiet_if_busy:
                return []
            return ["outbox busy (another mailbag is sending); it is retried on the next sync"]
        except MailbagError as exc:
            return [f"outbox: {exc.message}"]
        return [summarize(r) for r in result.reports]

    def outbox_lines(self) -> list[tuple[str, str]]:
        """(id, one line) for each message in the outbox: state, subject, recipients, error."""
        from mailbag.store.outbox import Outbox

        out = []
        for r in Outbox.open(self.paths).records():
            everyone = [*r.delivered, *r.recipients, *(x["address"] for x in r.rejected)]
            to = ", ".join(everyone) or "(no recipient)"
            line = f"{r.state.value:<9} {r.subject or '(no subject)'}  to {to}"
            if r.last_error:
                line += f"  ({r.last_error.get('message', '')})"
            out.append((r.id, clean_terminal(line)))
        return out

    def retry(self, record_id: str) -> None:
        """Queue a failed or uncertain message again (sent by the next flush)."""
        from mailbag.store.outbox import Outbox, OutboxState
        from mailbag.sync.outbox import retry

        outbox = Outbox.open(self.paths)
        if outbox.get(record_id).state in (OutboxState.QUEUED, OutboxState.DRAFT):
            return  # already due: the flush that follows sends it
        retry(outbox, record_id)

    def drop(self, record_id: str) -> str:
        """Remove a message from the outbox for good; returns its subject."""
        from mailbag.store.outbox import Outbox
        from mailbag.sync.outbox import drop

        return drop(Outbox.open(self.paths), record_id).subject

    def pending(self) -> int:
        """Messages waiting in the outbox (queued, or drafts not yet saved to Drafts)."""
        from mailbag.store.outbox import Outbox, OutboxState

        states = (OutboxState.QUEUED, OutboxState.DRAFT)
        return sum(1 for r in Outbox.open(self.paths).records() if r.state in states)


def summarize(report: SendReport) -> str:
    """One status-bar line (short: the bar is one line) for what happened to an outbox message."""
    subject = clean_terminal(report.subject or "(no subject)")
    accepted = [str(r["address"]) for r in report.recipients if r["status"] == "accepted"]
    refused = [
        f"{r['address']} ({r['reply']})" if r["reply"] else str(r["address"])
        for r in report.recipients
        if r["status"] == "rejected"
    ]
    reason = str(report.error.get("message") or "") if report.error else ""
    if report.state in ("sent", "removed"):
        line = f"sent {subject!r} to {', '.join(accepted)}"
        if report.copy_error:
            line += " (the copy to Sent is retried on the next sync)"
    elif report.state == "draft-saved":
        line = f"saved {subject!r} to Drafts"
    elif report.state == "draft":
        line = f"draft {subject!r} waits in the outbox, saved to Drafts on the next sync: {reason}"
    elif accepted:
        line = f"sent {subject!r} to {', '.join(accepted)} but not to everyone: "
        line += "refused " + "; ".join(refused) if refused else "the rest is retried"
    elif report.state == "queued":
        line = f"not sent yet: {subject!r} waits in the outbox, retried on the next sync: {reason}"
    elif report.state == "uncertain":
        line = f"{subject!r} may or may not have been delivered ({reason}); see `mailbag outbox`"
    else:
        line = f"not sent: {subject!r}: {reason} (kept in `mailbag outbox`)"
    return clean_terminal(line)


def human_size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1024 * 1024):.1f} MB"
