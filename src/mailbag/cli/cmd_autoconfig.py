"""`mailbag autoconfig EMAIL [--json]`: show the settings discovery finds, and where from.

Saves nothing and sends no credentials. Exit 0 when incoming and outgoing
servers were chosen, 1 when discovery ran but could not choose both.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mailbag.cli.context import Context

if TYPE_CHECKING:
    from mailbag.autoconfig import Candidate, Discovery, DiscoveryOptions
    from mailbag.config import DiscoverySettings


def add_discovery_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by `autoconfig` and `account add`."""
    g = p.add_argument_group("discovery")
    g.add_argument(
        "--insecure",
        action="store_true",
        help="allow unencrypted ('none' security) servers; your password would travel in clear",
    )
    g.add_argument(
        "--allow-http",
        action="store_true",
        help="also try plain-HTTP autoconfig (never with your address in it)",
    )
    g.add_argument(
        "--trust-domain",
        action="append",
        default=[],
        metavar="DOMAIN",
        help="accept servers in DOMAIN although it is not your address's domain (repeatable)",
    )
    g.add_argument(
        "--dns-server",
        metavar="HOST[:PORT]",
        help="DNS server for discovery look-ups (default: [discovery] dns_server, "
        "else the system's)",
    )
    g.add_argument("--ispdb-url", metavar="URL", help="base URL of the ISPDB (https only)")


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "autoconfig",
        parents=[common],
        help="find the server settings for an address (saves nothing)",
        description="Look up the IMAP/POP3 and SMTP settings for EMAIL: the built-in provider "
        "table, the provider's own autoconfig over HTTPS, the ISPDB, DNS SRV records, the "
        "domain's MX host and, last, probing the usual server names. Every candidate shows "
        "where it came from and whether it can be used without asking. No password is sent.",
    )
    p.add_argument("email", metavar="EMAIL")
    p.add_argument("--protocol", choices=["imap", "pop3"], help="the incoming protocol wanted")
    add_discovery_arguments(p)
    p.set_defaults(run=run)


def discovery_settings(args: argparse.Namespace, base: DiscoverySettings) -> DiscoverySettings:
    from mailbag.errors import UsageError
    from mailbag.record import replace

    settings = base
    if getattr(args, "dns_server", None):
        host, _, port = str(args.dns_server).rpartition(":")
        if not host or not port.isdigit():
            host, port = str(args.dns_server), str(base.dns_port)
        settings = replace(settings, dns_server=host, dns_port=int(port))
    if getattr(args, "ispdb_url", None):
        if not str(args.ispdb_url).startswith("https://"):
            raise UsageError("--ispdb-url must be an https:// URL")
        settings = replace(settings, ispdb_url=str(args.ispdb_url))
    return settings


def discovery_options(
    args: argparse.Namespace, ctx: Context, *, protocol: str | None
) -> DiscoveryOptions:
    from pathlib import Path

    from mailbag.autoconfig import DiscoveryOptions
    from mailbag.config import load_config

    config = load_config(ctx.paths)
    ca = getattr(args, "ca_file", None)
    return DiscoveryOptions(
        settings=discovery_settings(args, config.discovery),
        insecure=bool(args.insecure),
        allow_http=bool(args.allow_http),
        allow_domains=frozenset(d.lower().strip(".") for d in args.trust_domain),
        protocol=protocol,
        probe_ca_file=Path(ca).expanduser() if ca else config.discovery.ca_file,
    )


def describe(c: Candidate) -> str:
    trust = "trusted" if c.trusted else "NOT trusted"
    return (
        f"{c.protocol:<5} {c.host}:{c.port} {c.security.value:<8} user {c.username}  "
        f"[{c.source.value}, {trust}]"
    )


def show_discovery(found: Discovery, ctx: Context) -> None:
    """Human summary on stderr: the choice, then the notes users need, then the rest."""
    ctx.info(f"settings for {found.email}:")
    for label, chosen in (("incoming", found.incoming), ("outgoing", found.smtp)):
        ctx.info(f"  {label:<9} {describe(chosen) if chosen else '(none found)'}")
    notes: list[str] = []
    for chosen in (found.incoming, found.smtp):
        if chosen is not None:
            notes += [n for n in chosen.notes if n not in notes]
    for n in notes:
        ctx.info(f"  note: {n}")
    for problem in found.problems:
        ctx.info(f"  problem: {problem}")
    others = [c for c in found.candidates if c not in (found.incoming, found.smtp)]
    if others and ctx.verbose:
        ctx.info("  other candidates:")
        for c in others:
            ctx.info(f"    {describe(c)}")
    if ctx.verbose:
        for r in found.reports:
            ctx.info(f"  source {r.source.value:<10} {r.status:<8} {r.detail}")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from mailbag.autoconfig import discover

    found = discover(args.email, discovery_options(args, ctx, protocol=args.protocol))
    if ctx.json:
        ctx.emit_json(found.to_json())
    else:
        show_discovery(found, ctx)
        for c in found.candidates:
            mark = "*" if c in (found.incoming, found.smtp) else " "
            ctx.out(f"{mark} {describe(c)}")
    return 0 if found.incoming is not None and found.smtp is not None else 1
