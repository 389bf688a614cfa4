"""`mailbag account add|list|show|remove|set-password` (and `test`, from cmd_account_test).

`account add` discovers the settings (or takes them from flags), shows them
with their sources, gets the password, runs the account test and saves only
when it passes or the user explicitly chooses to save anyway. Secrets go to
the keyring or stay behind a password command; they are never printed.

Other modules can add `account` subcommands: each module named in
`ACCOUNT_SUBCOMMANDS` has `register(account_subparsers, common)`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailbag.cli.context import Context

if TYPE_CHECKING:
    from mailbag.autoconfig import Candidate, Discovery
    from mailbag.config import Account, SecretRef, Server

#: modules under mailbag.cli that add `account` subcommands; one per line, sorted
ACCOUNT_SUBCOMMANDS: tuple[str, ...] = (
    "cmd_account_login",
    "cmd_account_test",
)

STANDARD_PORTS = {
    ("imap", "ssl"): 993,
    ("imap", "starttls"): 143,
    ("imap", "none"): 143,
    ("pop3", "ssl"): 995,
    ("pop3", "starttls"): 110,
    ("pop3", "none"): 110,
    ("smtp", "ssl"): 465,
    ("smtp", "starttls"): 587,
    ("smtp", "none"): 587,
}
SECURITIES = ["ssl", "starttls", "none"]


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    from mailbag.cli.cmd_autoconfig import add_discovery_arguments

    account = subparsers.add_parser(
        "account",
        parents=[common],
        help="add, list, show, test and remove accounts",
        description="Manage mail accounts. Settings live in config.toml (edit it freely); "
        "passwords live in the system keyring or behind a password command, never in the file.",
    )
    sub = account.add_subparsers(dest="account_command", metavar="ACTION", required=True)

    add = sub.add_parser(
        "add",
        parents=[common],
        help="add an account: settings found from the address, or given by hand",
        description="Find the settings for EMAIL (or take them from the flags: any server "
        "flag overrides what discovery found), show them with their sources, ask for the "
        "password (or, with OAuth2, sign in in the browser), test the account, and save it "
        "when the test passes. Examples: `mailbag account add you@example.com`; "
        "`mailbag account add you@outlook.com --oauth-client-id ID` (Outlook.com accepts "
        "only OAuth2); `mailbag account add you@gmail.com --auth oauth2 --oauth-client-id ID "
        "--oauth-client-secret SECRET`.",
    )
    add.add_argument("email", metavar="EMAIL")
    add.add_argument("--name", help="the account's name (default: the email address)")
    add.add_argument("--display-name", metavar="TEXT", help="your name on sent mail")
    add.add_argument("--protocol", choices=["imap", "pop3"])
    add.add_argument("--incoming-host", metavar="HOST")
    add.add_argument("--incoming-port", type=int, metavar="N")
    add.add_argument("--incoming-security", choices=SECURITIES)
    add.add_argument("--smtp-host", metavar="HOST")
    add.add_argument("--smtp-port", type=int, metavar="N")
    add.add_argument("--smtp-security", choices=SECURITIES)
    add.add_argument("--username", metavar="USER", help="login name (default: the address)")
    add.add_argument(
        "--smtp-username", metavar="USER", help="SMTP login name when it differs from incoming"
    )
    add.add_argument(
        "--smtp-no-auth",
        action="store_true",
        help="the outgoing server does not require authentication",
    )
    add.add_argument(
        "--auth",
        choices=["password", "oauth2"],
        default=None,
        help="how to log in: a password (or app password), or oauth2: sign in at the "
        "provider in the browser, then mailbag keeps the sign-in (see 'OAuth2 sign-in' "
        "below). Default: password when the server accepts one, else oauth2",
    )
    pw = add.add_mutually_exclusive_group()
    pw.add_argument(
        "--password-command",
        metavar="CMD",
        help="get the password from CMD's first output line (e.g. 'pass show mail/work')",
    )
    pw.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add.add_argument(
        "--smtp-password-command",
        metavar="CMD",
        help="SMTP has its own password: get it from CMD",
    )
    add.add_argument(
        "--ca-file", metavar="PEM", help="trust this CA/certificate for this account's servers"
    )
    add.add_argument(
        "--identity",
        action="append",
        default=[],
        metavar="ADDR",
        help="another From address of this account (repeatable)",
    )
    add.add_argument("--default", action="store_true", help="make it the default account")
    add.add_argument("--no-test", action="store_true", help="save without testing")
    add.add_argument(
        "--no-send", action="store_true", help="test without the test message round trip"
    )
    add.add_argument(
        "--save-anyway",
        action="store_true",
        help="save even when the account test fails (for scripts; a TTY asks)",
    )
    add.add_argument(
        "--yes", "-y", action="store_true", help="never ask: fail if something is missing"
    )
    add_discovery_arguments(add)
    from mailbag.cli.cmd_account_login import add_oauth_arguments

    add_oauth_arguments(add)
    add.set_defaults(run=run_add)

    lst = sub.add_parser("list", parents=[common], help="list the accounts")
    lst.set_defaults(run=run_list)

    show = sub.add_parser("show", parents=[common], help="show an account's settings (no secrets)")
    show.add_argument("name", metavar="NAME")
    show.set_defaults(run=run_show)

    rm = sub.add_parser(
        "remove",
        parents=[common],
        help="remove an account, its stored passwords and (unless --keep-mail) its local mail",
        description="Remove the account from config.toml, delete its keyring entries "
        "(password, or OAuth2 refresh/access tokens and client secret) and, unless "
        "--keep-mail, its downloaded mail. An OAuth2 sign-in is first revoked at the "
        "provider where it allows that; when revocation fails (offline, no revocation "
        "endpoint) a warning says so and the account is removed anyway.",
    )
    rm.add_argument("name", metavar="NAME")
    rm.add_argument("--keep-mail", action="store_true", help="keep the downloaded mail")
    rm.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    rm.set_defaults(run=run_remove)

    sp = sub.add_parser(
        "set-password",
        parents=[common],
        help="store a new password in the keyring, or switch to a password command",
    )
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--smtp", action="store_true", help="the SMTP server's own password")
    group = sp.add_mutually_exclusive_group()
    group.add_argument("--password-stdin", action="store_true")
    group.add_argument("--password-command", metavar="CMD")
    sp.set_defaults(run=run_set_password)

    for name in ACCOUNT_SUBCOMMANDS:
        try:
            module = importlib.import_module(f"mailbag.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"mailbag.cli.{name}":
                raise
            continue  # not landed in this tree
        module.register(sub, common)


# --- small interaction helpers -----------------------------------------------------------


def _can_ask(args: argparse.Namespace) -> bool:
    return not getattr(args, "yes", False) and sys.stdin.isatty()


def _ask(ctx: Context, question: str) -> str:
    ctx.stderr.write(question)
    ctx.stderr.flush()
    return sys.stdin.readline().strip()


def _confirm(ctx: Context, question: str) -> bool:
    return _ask(ctx, f"{question} [y/N] ").lower() in ("y", "yes")


def _password(ctx: Context, prompt: str) -> str:
    import getpass

    from mailbag.errors import UsageError

    secret = getpass.getpass(prompt, stream=ctx.stderr)  # type: ignore[arg-type]
    if not secret:
        raise UsageError("no password given")
    return secret


# --- account add ---------------------------------------------------------------------


def _missing(what: str, flag: str) -> Exception:
    from mailbag.errors import UsageError

    return UsageError(f"{what} is not known", hint=f"give it with {flag}")


def _server_from(
    kind: str,
    found: Candidate | None,
    host: str | None,
    port: int | None,
    security: str | None,
) -> tuple[str, int, str, str]:
    """Merge flags over the discovered candidate: (host, port, security, source)."""
    source = found.source.value if found is not None else "manual"
    if host is None and found is not None:
        host = found.host
    if host is None:
        raise _missing(f"the {kind} server", f"--{'smtp' if kind == 'smtp' else 'incoming'}-host")
    same_host = found is not None and found.host == host
    if security is None:
        security = found.security.value if same_host and found is not None else "ssl"
    if port is None:
        if same_host and found is not None and found.security.value == security:
            port = found.port
        else:
            port = STANDARD_PORTS[(kind, security)]
    if found is None or (host, port, security) != (found.host, found.port, found.security.value):
        source = "manual" if found is None or not same_host else f"manual+{found.source.value}"
    return host, port, security, source


def _ask_server(args: argparse.Namespace, ctx: Context, prefix: str, kind: str) -> None:
    """Prompt for host, security and port of one server into `args`."""
    label = "outgoing (SMTP)" if kind == "smtp" else f"incoming ({kind.upper()})"
    host = _ask(ctx, f"{label} server host name: ")
    if not host:
        return
    setattr(args, f"{prefix}_host", host)
    security = _ask(ctx, f"{label} security, ssl or starttls [ssl]: ") or "ssl"
    if security not in SECURITIES:
        security = "ssl"
    setattr(args, f"{prefix}_security", security)
    default_port = STANDARD_PORTS[(kind, security)]
    port = _ask(ctx, f"{label} port [{default_port}]: ")
    setattr(args, f"{prefix}_port", int(port) if port.isdigit() else default_port)


@dataclass(frozen=True)
class ServerChoice:
    """One server as `account add` will use it, and where each part came from."""

    host: str
    port: int
    security: str
    username: str
    source: str  # "autoconfig", "manual", "manual+ispdb" (flags over a discovered server), ...


@dataclass(frozen=True)
class Plan:
    protocol: str
    incoming: ServerChoice
    smtp: ServerChoice
    auth: str
    notes: tuple[str, ...]


def _check_security(args: argparse.Namespace, *values: str) -> None:
    from mailbag.errors import UsageError

    if "none" in values and not args.insecure:
        raise UsageError(
            "refusing an unencrypted connection ('none' security): your password and mail "
            "would travel in clear",
            hint="use ssl or starttls; only if you really must, add --insecure",
        )


def _plan_settings(args: argparse.Namespace, ctx: Context) -> tuple[Plan, Discovery | None]:
    """Discover (unless every server field was given), then apply the flags."""
    from mailbag.autoconfig import discover, split_address
    from mailbag.cli.cmd_autoconfig import discovery_options, show_discovery
    from mailbag.errors import UsageError

    split_address(args.email)
    _check_security(args, args.incoming_security or "", args.smtp_security or "")
    manual_in = args.incoming_host and args.incoming_security and args.incoming_port
    manual_out = args.smtp_host and args.smtp_security and args.smtp_port
    found: Discovery | None = None
    # every server given by hand: nothing to look up (the protocol defaults to IMAP)
    if not (manual_in and manual_out):
        options = discovery_options(args, ctx, protocol=args.protocol)
        ctx.info(f"looking up the settings for {args.email} ...")
        found = discover(args.email, options)
        from mailbag.autoconfig.dnslookup import registered_domain

        domains = sorted(
            {
                registered_domain(c.host) or c.host
                for c in found.candidates
                if not c.trusted and "outside your address's domain" in " ".join(c.notes)
            }
        )
        if (found.incoming is None or found.smtp is None) and domains and _can_ask(args):
            show_discovery(found, ctx)
            if _confirm(
                ctx,
                f"the servers found are in {', '.join(domains)}, not in your address's "
                "domain. Send your password there?",
            ):
                from mailbag.record import replace

                options = replace(options, allow_domains=options.allow_domains | set(domains))
                found = discover(args.email, options)
    incoming_c = found.incoming if found else None
    smtp_c = found.smtp if found else None
    if (incoming_c is None or smtp_c is None) and _can_ask(args):
        # the classic manual form, for what discovery could not find
        if found is not None:
            show_discovery(found, ctx)
        ctx.info("enter the missing settings by hand (Enter takes the default):")
        if incoming_c is None and not args.incoming_host:
            args.protocol = args.protocol or _ask(ctx, "incoming protocol, imap or pop3 [imap]: ")
            if args.protocol not in ("imap", "pop3"):
                args.protocol = "imap"
            _ask_server(args, ctx, "incoming", args.protocol)
        if smtp_c is None and not args.smtp_host:
            _ask_server(args, ctx, "smtp", "smtp")
    protocol = args.protocol or (incoming_c.protocol if incoming_c else "imap")
    if incoming_c is not None and incoming_c.protocol != protocol:
        incoming_c = None
    try:
        ihost, iport, isec, isrc = _server_from(
            protocol, incoming_c, args.incoming_host, args.incoming_port, args.incoming_security
        )
        shost, sport, ssec, ssrc = _server_from(
            "smtp", smtp_c, args.smtp_host, args.smtp_port, args.smtp_security
        )
    except UsageError as exc:
        if found is not None:
            show_discovery(found, ctx)
            problems = "; ".join(found.problems)
            raise UsageError(
                f"could not find complete settings for {args.email}"
                + (f": {problems}" if problems else ""),
                hint=(exc.hint or "") + " (or see: mailbag autoconfig " + args.email + " -v)",
            ) from None
        raise
    _check_security(args, isec, ssec)
    username = args.username or (incoming_c.username if incoming_c else "") or args.email.strip()
    smtp_username = args.smtp_username or (
        smtp_c.username if smtp_c and not args.username else username
    )
    auth_offered = set(incoming_c.auth) if incoming_c else {"password"}
    auth = args.auth or ("password" if "password" in auth_offered else "oauth2")
    notes: list[str] = []
    for c in (incoming_c, smtp_c):
        if c is not None:
            notes += [n for n in c.notes if n not in notes]
    plan = Plan(
        protocol=protocol,
        incoming=ServerChoice(ihost, iport, isec, username, isrc),
        smtp=ServerChoice(shost, sport, ssec, smtp_username, ssrc),
        auth=auth,
        notes=tuple(notes),
    )
    return plan, found


def _secret_refs(args: argparse.Namespace, name: str) -> tuple[SecretRef, SecretRef]:
    """Where the passwords come from. SMTP reuses the incoming password source (even with
    its own --smtp-username) unless it has its own command or needs no authentication."""
    from mailbag.config import SecretRef, SecretSource
    from mailbag.config.schema import keyring_key

    if args.password_command:
        incoming = SecretRef(SecretSource.COMMAND, args.password_command)
    else:
        incoming = SecretRef(SecretSource.KEYRING, keyring_key(name, "incoming"))
    if args.smtp_no_auth:
        smtp = SecretRef(SecretSource.NONE, "")
    elif args.smtp_password_command:
        smtp = SecretRef(SecretSource.COMMAND, args.smtp_password_command)
    else:
        smtp = incoming
    return incoming, smtp


def _obtain_secrets(args: argparse.Namespace, ctx: Context, account: Account) -> dict[str, str]:
    """The secrets to test with (and, for keyring refs, to store): {"incoming": .., "smtp": ..}."""
    from mailbag.config import SecretSource
    from mailbag.config.secrets import read_secret_stream, require_keyring, run_password_command
    from mailbag.errors import UsageError

    refs = {"incoming": account.incoming.secret, "smtp": account.smtp.secret}
    needs_keyring = any(r.source is SecretSource.KEYRING for r in refs.values())
    if needs_keyring:
        # say so before asking for a password that could not be kept
        require_keyring()
    secrets: dict[str, str] = {}
    for which, ref in refs.items():
        if which == "smtp" and ref == refs["incoming"]:
            if "incoming" in secrets:
                secrets["smtp"] = secrets["incoming"]
            continue
        if ref.source is SecretSource.COMMAND:
            secrets[which] = run_password_command(ref.key)
        elif ref.source is SecretSource.KEYRING:
            if which == "incoming" and args.password_stdin:
                secrets[which] = read_secret_stream(sys.stdin)
            elif _can_ask(args):
                label = "password" if which == "incoming" else "SMTP password"
                secrets[which] = _password(ctx, f"{label} for {account.email}: ")
            else:
                raise UsageError(
                    f"no {'SMTP ' if which == 'smtp' else ''}password given",
                    hint="use --password-stdin or --password-command CMD "
                    "(with --yes, or without a terminal, mailbag never asks)",
                )
    return secrets


def _account_from(args: argparse.Namespace, plan: Plan) -> Account:
    from pathlib import Path

    from mailbag.config import Account, AuthMethod, Protocol, Server, SmtpServer
    from mailbag.protocols.transport import Security

    name = args.name or args.email.strip()
    inc, out = plan.incoming, plan.smtp
    iref, sref = _secret_refs(args, name)
    auth = AuthMethod(plan.auth)
    incoming = Server(
        inc.host, inc.port, Security(inc.security), inc.username, auth=auth, secret=iref
    )
    smtp = SmtpServer(
        out.host,
        out.port,
        Security(out.security),
        out.username,
        auth=auth,
        secret=sref,
        requires_auth=not args.smtp_no_auth,
    )
    ca = Path(args.ca_file).expanduser().resolve() if args.ca_file else None
    return Account(
        name=name,
        email=args.email.strip(),
        protocol=Protocol(plan.protocol),
        incoming=incoming,
        smtp=smtp,
        display_name=args.display_name or "",
        identities=tuple(args.identity),
        ca_file=ca,
    )


def _show_plan(ctx: Context, account: Account, plan: Plan) -> None:
    ctx.info(f"account {account.name!r} ({account.email}):")
    for label, server, source in (
        (account.protocol.value, account.incoming, plan.incoming.source),
        ("smtp", account.smtp, plan.smtp.source),
    ):
        ctx.info(
            f"  {label:<5} {server.host}:{server.port} {server.security.value:<8} "
            f"user {server.username}  (from {source})"
        )
    for note in plan.notes:
        ctx.info(f"  note: {note}")


def _run_test(
    args: argparse.Namespace, ctx: Context, account: Account, secrets: dict[str, str]
) -> Any | None:
    """The account test's report, or None when the diagnose module is not available."""
    try:
        from mailbag.diagnose import test_account
    except ImportError:
        ctx.warn("the account test is not available in this build: saving without testing")
        return None
    from mailbag.cli.cmd_account_test import format_step

    def show(step: Any) -> None:
        for line in format_step(step):
            ctx.info(line)

    def secret(which: str) -> str:
        from mailbag.errors import SecretError

        if which not in secrets:
            raise SecretError(f"no {which} password")
        return secrets[which]

    ctx.info("testing the account ...")
    # OAuth2: the account test's own getter hands out access tokens (mailbag.auth)
    oauth2 = account.incoming.auth.value == "oauth2"
    return test_account(
        account, secret=None if oauth2 else secret, send=not args.no_send, on_step=show
    )


def _with_published_oauth2(
    args: argparse.Namespace, ctx: Context, account: Account, found: Discovery | None
) -> Account:
    """Use the OAuth2 endpoints the provider published with its settings (an autoconfig
    `<oAuth2>` block) unless mailbag knows the provider itself or the user chose one."""
    from mailbag.auth.setup import with_published

    info = found.oauth2 if found is not None else None
    account, notes = with_published(account, info, args.oauth_provider or "")
    for note in notes:
        ctx.info(note)
    return account


def run_add(args: argparse.Namespace, ctx: Context) -> int:
    from mailbag.config import SecretSource, load_config, save_account
    from mailbag.config.secrets import store_secret
    from mailbag.errors import ConfigError
    from mailbag.record import replace

    config = load_config(ctx.paths)
    name = args.name or args.email.strip()
    if name in config.accounts:
        raise ConfigError(
            f"an account named {name!r} already exists",
            hint=f"choose another --name, or remove it first: mailbag account remove {name}",
        )
    plan, found = _plan_settings(args, ctx)
    account = _account_from(args, plan)
    if not ctx.json:
        _show_plan(ctx, account, plan)
    oauth2 = account.incoming.auth.value == "oauth2"
    if oauth2:
        # sign in now (browser or --device); the refresh token goes to the keyring
        from mailbag.cli.cmd_account_login import oauth_sign_in

        account = _with_published_oauth2(args, ctx, account, found)

        if args.auth is None:
            ctx.info(f"{account.incoming.host} accepts only OAuth2: signing in ...")
        account = oauth_sign_in(args, ctx, account)
    secrets = {} if oauth2 else _obtain_secrets(args, ctx, account)

    report = None
    if not args.no_test:
        report = _run_test(args, ctx, account, secrets)
    tested_ok = report is None or report.ok
    save = tested_ok
    if not tested_ok:
        if args.save_anyway:
            save = True
        elif _can_ask(args):
            save = _confirm(ctx, "the account test failed. Save the account anyway?")
    if save:
        if report is not None and report.server_saves_sent is not None:
            account = replace(account, server_saves_sent=report.server_saves_sent)
        for which, ref in (("incoming", account.incoming.secret), ("smtp", account.smtp.secret)):
            if ref.source is SecretSource.KEYRING and which in secrets:
                store_secret(ref, secrets[which])
        save_account(ctx.paths, account, make_default=args.default or not config.accounts)
    elif oauth2:
        from mailbag.auth import sign_out

        sign_out(account, paths=ctx.paths)  # not kept: end and forget the sign-in too
    if ctx.json:
        ctx.emit_json(
            {
                "account": account.name,
                "saved": save,
                "settings": account_json(account),
                "sources": {"incoming": plan.incoming.source, "smtp": plan.smtp.source},
                "notes": list(plan.notes),
                "test": report.to_json() if report is not None else None,
                "discovery": found.to_json() if found is not None else None,
            }
        )
    elif save:
        ctx.info(f"saved account {account.name!r} in {ctx.paths.config_file}")
        if report is None:
            ctx.info(f"not tested: check it with: mailbag account test {account.name}")
    else:
        ctx.info("not saved: fix the problem above and run this again (or add --save-anyway)")
    if not tested_ok:
        return 1
    return 0


# --- list / show / remove / set-password ---------------------------------------------------


def _secret_json(ref: SecretRef) -> dict[str, str]:
    from mailbag.config import SecretSource

    if ref.source is SecretSource.COMMAND:
        # only the program: arguments can carry secrets people should not have put there
        program = ref.key.split()[0] if ref.key.split() else ""
        return {"source": "command", "command": f"{program} <redacted>"}
    if ref.source is SecretSource.KEYRING:
        return {"source": "keyring", "service": "mailbag", "key": ref.key}
    return {"source": "none"}


def _server_json(server: Server) -> dict[str, Any]:
    return {
        "host": server.host,
        "port": server.port,
        "security": server.security.value,
        "username": server.username,
        "auth": server.auth.value,
        "secret": _secret_json(server.secret),
    }


def account_json(account: Account) -> dict[str, Any]:
    """Everything about the account except secrets."""
    from mailbag.config.schema import options_plain

    smtp = _server_json(account.smtp)
    smtp["requires_auth"] = account.smtp.requires_auth
    return {
        "name": account.name,
        "email": account.email,
        "display_name": account.display_name,
        "identities": list(account.identities),
        "protocol": account.protocol.value,
        "incoming": _server_json(account.incoming),
        "smtp": smtp,
        "ca_file": str(account.ca_file) if account.ca_file else None,
        "server_saves_sent": account.server_saves_sent,
        **options_plain(account),
    }


def run_list(args: argparse.Namespace, ctx: Context) -> int:
    from mailbag.config import load_config

    config = load_config(ctx.paths)
    rows = [
        {
            "name": a.name,
            "email": a.email,
            "protocol": a.protocol.value,
            "incoming": f"{a.incoming.host}:{a.incoming.port}",
            "smtp": f"{a.smtp.host}:{a.smtp.port}",
            "default": a.name == config.default_account,
        }
        for a in config.accounts.values()
    ]
    if ctx.json:
        ctx.emit_json(rows)
        return 0
    if not rows:
        ctx.info("no accounts yet: mailbag account add YOU@EXAMPLE.COM")
    for r in rows:
        mark = "*" if r["default"] else " "
        ctx.out(
            f"{mark} {r['name']}  {r['email']}  {r['protocol']} {r['incoming']}  smtp {r['smtp']}"
        )
    return 0


def run_show(args: argparse.Namespace, ctx: Context) -> int:
    from mailbag.config import load_config

    config = load_config(ctx.paths)
    account = config.account(args.name)
    doc = account_json(account)
    doc["default"] = account.name == config.default_account
    if ctx.json:
        ctx.emit_json(doc)
        return 0
    ctx.out(f"name:          {account.name}{'  (default)' if doc['default'] else ''}")
    ctx.out(f"email:         {account.email}")
    if account.display_name:
        ctx.out(f"display name:  {account.display_name}")
    if account.identities:
        ctx.out(f"identities:    {', '.join(account.identities)}")
    for label, key in ((account.protocol.value, "incoming"), ("smtp", "smtp")):
        s = doc[key]
        secret = s["secret"]
        where = {
            "keyring": f"keyring entry {secret.get('key')!r}",
            "command": f"command {secret.get('command')}",
            "none": "none",
        }[secret["source"]]
        extra = "" if key != "smtp" or s["requires_auth"] else "  (no authentication)"
        ctx.out(
            f"{label + ':':<14} {s['host']}:{s['port']} {s['security']}  user {s['username']}  "
            f"auth {s['auth']}  password: {where}{extra}"
        )
    if account.ca_file:
        ctx.out(f"CA file:       {account.ca_file}")
    return 0


def run_remove(args: argparse.Namespace, ctx: Context) -> int:
    from mailbag.config import AuthMethod, load_config, remove_account
    from mailbag.config.secrets import delete_secret

    account = load_config(ctx.paths).account(args.name)
    if not args.yes and sys.stdin.isatty():
        what = "" if args.keep_mail else " and its downloaded mail"
        if not _confirm(ctx, f"remove account {account.name!r}{what}?"):
            ctx.info("nothing removed")
            return 1
    signed_out = None
    if AuthMethod.OAUTH2 in (account.incoming.auth, account.smtp.auth):
        from mailbag.auth import sign_out

        # revoke at the provider first (it needs the account's settings), best effort
        signed_out = sign_out(account, paths=ctx.paths)
        if signed_out.problem:
            ctx.warn(
                f"the OAuth2 sign-in of {account.name!r} was not revoked: {signed_out.problem}"
                + (f" ({signed_out.hint})" if signed_out.hint else "")
            )
    remove_account(ctx.paths, account.name)
    removed_secrets = sum(
        delete_secret(ref) for ref in {account.incoming.secret, account.smtp.secret}
    ) + (len(signed_out.removed) if signed_out is not None else 0)
    mail_note = _remove_mail(ctx, account.name) if not args.keep_mail else "local mail kept"
    if ctx.json:
        ctx.emit_json(
            {
                "account": account.name,
                "removed": True,
                "secrets_removed": removed_secrets,
                "mail": mail_note,
                "oauth2": None
                if signed_out is None
                else {"revoked": signed_out.revoked, "problem": signed_out.problem or None},
            }
        )
    else:
        ctx.info(f"removed account {account.name!r} ({mail_note})")
    return 0


def _remove_mail(ctx: Context, name: str) -> str:
    """Delete the account's local mail through the store, where the store offers it."""
    if not ctx.paths.index_file.exists():
        return "no local mail"
    from mailbag.store.index import Store

    with Store.open(ctx.paths) as store:
        remover: Callable[[str], object] | None = getattr(store, "remove_account", None)
        if remover is None:
            return f"local mail kept in {ctx.paths.mail_dir} (this build cannot remove it)"
        remover(name)
    return "local mail removed"


def run_set_password(args: argparse.Namespace, ctx: Context) -> int:
    from mailbag.config import SecretRef, SecretSource, load_config, save_account
    from mailbag.config.schema import keyring_key
    from mailbag.config.secrets import read_secret_stream, store_secret
    from mailbag.errors import UsageError
    from mailbag.record import replace

    account = load_config(ctx.paths).account(args.name)
    which = "smtp" if args.smtp else "incoming"
    server = account.smtp if args.smtp else account.incoming
    if args.smtp and not account.smtp.requires_auth:
        raise UsageError(f"the SMTP server of {account.name!r} is set to need no authentication")
    if args.password_command:
        ref = SecretRef(SecretSource.COMMAND, args.password_command)
        ctx.info("checking the command ...")
        from mailbag.config.secrets import run_password_command

        run_password_command(args.password_command)
    else:
        ref = server.secret
        own_smtp = args.smtp and ref == account.incoming.secret
        if ref.source is not SecretSource.KEYRING or own_smtp:
            ref = SecretRef(SecretSource.KEYRING, keyring_key(account.name, which))
        if args.password_stdin:
            secret = read_secret_stream(sys.stdin)
        elif sys.stdin.isatty():
            secret = _password(
                ctx, f"new {'SMTP ' if args.smtp else ''}password for {account.email}: "
            )
        else:
            raise UsageError("no password given", hint="use --password-stdin or --password-command")
        store_secret(ref, secret)
    if ref != server.secret:
        new_server = replace(server, secret=ref)
        if args.smtp:
            account = replace(account, smtp=new_server)
        else:
            smtp = account.smtp
            if smtp.secret == account.incoming.secret:
                # SMTP followed the incoming password: keep following it
                smtp = replace(smtp, secret=ref)
            account = replace(account, incoming=new_server, smtp=smtp)
        save_account(ctx.paths, account)
    ctx.info(f"{which} password of {account.name!r} now comes from {ref.source.value}")
    return 0
