"""Find an address's server settings: all sources at once, the highest-priority answer wins.

Sources, in priority order: the built-in provider table, the provider's own
autoconfig (autoconfig.<domain>, then <domain>/.well-known), the ISPDB, DNS SRV
(RFC 6186/8314), the MX host's registered domain, and guessing. Every
candidate records its source and whether it may be used without asking.

Security rules kept here: the address is only sent over HTTPS to the
address's own domain; nothing is queried outside the address's domain, its
MX's registered domain and the configured ISPDB; a server outside those
domains (from SRV or plain HTTP) is never chosen without the user naming its
domain; plaintext is never chosen without `insecure`; no credentials are sent.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import quote

from mailbag.autoconfig.clientconfig import parse_client_config
from mailbag.autoconfig.dnslookup import Dns, SrvRecord, registered_domain
from mailbag.autoconfig.fetch import fetch
from mailbag.autoconfig.model import (
    SECURITY_RANK,
    Candidate,
    Discovery,
    DiscoveryOptions,
    Source,
    SourceReport,
)
from mailbag.autoconfig.probe import guess
from mailbag.autoconfig.providers import provider_for_domain, provider_for_host, provider_for_mx
from mailbag.errors import MailbagError, NetworkError, UsageError
from mailbag.protocols.transport import Security

#: RFC 6186 / RFC 8314 services: (name, protocol, security)
SRV_SERVICES: tuple[tuple[str, str, Security], ...] = (
    ("_imaps._tcp", "imap", Security.SSL),
    ("_imap._tcp", "imap", Security.STARTTLS),
    ("_pop3s._tcp", "pop3", Security.SSL),
    ("_pop3._tcp", "pop3", Security.STARTTLS),
    ("_submissions._tcp", "smtp", Security.SSL),
    ("_submission._tcp", "smtp", Security.STARTTLS),
)


def split_address(email: str) -> tuple[str, str]:
    email = email.strip()
    local, at, domain = email.rpartition("@")
    domain = domain.lower().rstrip(".")
    if not at or not local or not domain or "." not in domain or any(c.isspace() for c in email):
        raise UsageError(
            f"{email!r} is not an email address", hint="give the full address, like you@example.com"
        )
    return local, domain


# --- the sources -----------------------------------------------------------------------


def _from_xml(
    data: bytes | None, email: str, source: Source, trusted: bool, extra_note: str = ""
) -> list[Candidate]:
    if data is None:
        return []
    config = parse_client_config(data)
    found = config.candidates(email, source, trusted)
    return [c.with_notes(extra_note) for c in found] if extra_note else found


def autoconfig_source(
    email: str, domain: str, options: DiscoveryOptions, dns: Dns
) -> list[Candidate]:
    port = options.settings.https_port
    netloc = f"autoconfig.{domain}" + (f":{port}" if port != 443 else "")
    url = f"https://{netloc}/mail/config-v1.1.xml?emailaddress={quote(email, safe='@')}"
    try:
        found = _from_xml(fetch(url, options.settings, dns), email, Source.AUTOCONFIG, True)
    except MailbagError:
        if not options.allow_http:
            raise
        found = []
    if found or not options.allow_http:
        return found
    # consented plain HTTP: no address in the request, and the answer is not trusted blindly
    http_port = options.settings.http_port
    http_netloc = f"autoconfig.{domain}" + (f":{http_port}" if http_port != 80 else "")
    http_url = f"http://{http_netloc}/mail/config-v1.1.xml"
    return [
        c.with_notes(
            "fetched over plain HTTP: it could have been altered on the way; check the servers"
        )
        for c in _from_xml(fetch(http_url, options.settings, dns), email, Source.AUTOCONFIG, False)
    ]


def well_known_source(
    email: str, domain: str, options: DiscoveryOptions, dns: Dns
) -> list[Candidate]:
    port = options.settings.https_port
    netloc = domain + (f":{port}" if port != 443 else "")
    url = (
        f"https://{netloc}/.well-known/autoconfig/mail/config-v1.1.xml"
        f"?emailaddress={quote(email, safe='@')}"
    )
    return _from_xml(fetch(url, options.settings, dns), email, Source.WELL_KNOWN, True)


def ispdb_url(options: DiscoveryOptions, domain: str) -> str:
    base = options.settings.ispdb_url
    return base + ("" if base.endswith("/") else "/") + quote(domain)


def ispdb_source(email: str, domain: str, options: DiscoveryOptions, dns: Dns) -> list[Candidate]:
    # by domain only: the address never goes to the ISPDB
    return _from_xml(
        fetch(ispdb_url(options, domain), options.settings, dns), email, Source.ISPDB, True
    )


def srv_candidates(
    email: str, records: dict[str, list[SrvRecord]]
) -> tuple[list[Candidate], list[str]]:
    """Candidates from SRV answers per service name; also notes on services not offered."""
    out: list[Candidate] = []
    not_offered: list[str] = []
    rank = 0
    for name, protocol, security in SRV_SERVICES:
        recs = records.get(name, [])
        if len(recs) == 1 and recs[0].target == "":
            not_offered.append(f"{name}: the domain says this service is not offered")
            continue
        for r in recs:
            if not r.target:
                continue
            out.append(
                Candidate(
                    protocol=protocol,
                    host=r.target,
                    port=r.port,
                    security=security,
                    username=email,
                    auth=("password",),
                    source=Source.SRV,
                    trusted=False,  # decided later against the allowed domains
                    notes=(f"DNS SRV {name} (priority {r.priority}, weight {r.weight})",),
                    rank=rank,
                )
            )
            rank += 1
    return out, not_offered


def srv_source(email: str, domain: str, dns: Dns) -> list[Candidate]:
    records = {name: dns.srv(f"{name}.{domain}") for name, _, _ in SRV_SERVICES}
    found, _ = srv_candidates(email, records)
    return found


def mx_source(
    email: str, domain: str, options: DiscoveryOptions, dns: Dns, state: dict[str, str]
) -> list[Candidate]:
    mx = dns.mx(domain)
    if not mx:
        return []
    host = mx[0][1]
    own = registered_domain(domain) or domain
    mx_domain = registered_domain(host)
    if not mx_domain or mx_domain == own:
        return []
    state["mx_host"] = host
    state["mx_domain"] = mx_domain
    note = f"found through the domain's mail server {host} (run by {mx_domain})"
    provider = provider_for_mx(mx_domain) or provider_for_domain(mx_domain)
    if provider is not None:
        return [c.with_notes(note) for c in provider.candidates(email, Source.MX)]
    try:
        found = _from_xml(
            fetch(ispdb_url(options, mx_domain), options.settings, dns),
            email,
            Source.MX,
            True,
            note,
        )
    except MailbagError:
        found = []
    if found:
        return found
    port = options.settings.https_port
    netloc = f"autoconfig.{mx_domain}" + (f":{port}" if port != 443 else "")
    # the MX's domain is another party: it does not get the address
    url = f"https://{netloc}/mail/config-v1.1.xml"
    return _from_xml(fetch(url, options.settings, dns), email, Source.MX, True, note)


# --- choosing -------------------------------------------------------------------------


def _usable(c: Candidate, insecure: bool) -> bool:
    return c.trusted and (c.security is not Security.NONE or insecure)


def choose(
    candidates: list[Candidate], *, protocol: str | None, insecure: bool
) -> tuple[Candidate | None, Candidate | None]:
    """The incoming and SMTP candidates from the highest-priority source that has one.

    Within a source: implicit TLS before STARTTLS, then the source's own order.
    Without a requested protocol, IMAP is preferred to POP3 within a source.
    """
    wanted = [protocol] if protocol else ["imap", "pop3"]

    def best(kinds: list[str]) -> Candidate | None:
        for source in Source:
            for kind in kinds:
                pool = [
                    c
                    for c in candidates
                    if c.source is source and c.protocol == kind and _usable(c, insecure)
                ]
                if pool:
                    return min(pool, key=lambda c: (SECURITY_RANK[c.security], c.rank))
        return None

    return best(wanted), best(["smtp"])


#: sources whose servers need the domain check: a third party (ISPDB, the MX's domain)
#: or an unauthenticated channel (DNS, plain HTTP) named them, not the domain's own HTTPS
_CHECKED_SOURCES = (Source.ISPDB, Source.SRV, Source.MX)


def _mark_trust(candidates: list[Candidate], allowed: set[str]) -> list[Candidate]:
    """Servers outside the allowed domains are not used without the user naming the
    domain, unless they are hosts of mailbag's own provider table."""
    out = []
    for c in candidates:
        if c.source in _CHECKED_SOURCES or (c.source is Source.AUTOCONFIG and not c.trusted):
            reg = registered_domain(c.host) or c.host
            trusted = reg in allowed or provider_for_host(c.host) is not None
            if not trusted:
                c = c.with_notes(
                    f"{c.host} is outside your address's domain ({reg}): "
                    f"used only if you confirm (--trust-domain {reg})"
                )
            c = replace(c, trusted=trusted)
        out.append(c)
    return out


def _problems(
    candidates: list[Candidate],
    incoming: Candidate | None,
    smtp: Candidate | None,
    options: DiscoveryOptions,
) -> list[str]:
    problems = []
    for label, chosen, kinds in (
        ("incoming", incoming, [options.protocol] if options.protocol else ["imap", "pop3"]),
        ("outgoing (SMTP)", smtp, ["smtp"]),
    ):
        if chosen is not None:
            continue
        relevant = [c for c in candidates if c.protocol in kinds]
        untrusted = sorted({registered_domain(c.host) or c.host for c in relevant if not c.trusted})
        plaintext = [c for c in relevant if c.trusted and c.security is Security.NONE]
        if untrusted:
            problems.append(
                f"no {label} server inside your domain was found; servers were offered in "
                f"{', '.join(untrusted)}: use them only if you trust that "
                f"(--trust-domain {untrusted[0]})"
            )
        elif plaintext and not options.insecure:
            problems.append(
                f"only an unencrypted {label} server was found "
                f"({plaintext[0].host}:{plaintext[0].port}); mailbag never picks plaintext by "
                "itself (--insecure accepts it, and your password would travel unencrypted)"
            )
        else:
            problems.append(f"no {label} server settings were found")
    return problems


# --- running ---------------------------------------------------------------------------


def discover(email: str, options: DiscoveryOptions | None = None) -> Discovery:
    """Run the discovery sources for `email`; never sends credentials."""
    options = options or DiscoveryOptions()
    _, domain = split_address(email)
    email = email.strip()
    own = registered_domain(domain) or domain
    allowed = {own, *options.allow_domains}
    timeout = options.settings.timeout

    provider = provider_for_domain(domain)
    if provider is not None and Source.BUILTIN in options.sources:
        # the table is authoritative for these providers: no need to ask anyone else
        table_found = provider.candidates(email)
        table_reports = [SourceReport(Source.BUILTIN, "found", provider.name)] + [
            SourceReport(s, "skipped", "the built-in provider table matched")
            for s in options.sources
            if s is not Source.BUILTIN
        ]
        return _finish(email, table_found, table_reports, allowed, options)

    try:
        dns = Dns(options.settings)
    except NetworkError as exc:
        failed = [
            SourceReport(s, "failed", exc.message)
            for s in options.sources
            if s is not Source.BUILTIN
        ]
        return _finish(email, [], failed, allowed, options)
    state: dict[str, str] = {}
    tasks: dict[Source, Callable[[], list[Candidate]]] = {
        Source.AUTOCONFIG: lambda: autoconfig_source(email, domain, options, dns),
        Source.WELL_KNOWN: lambda: well_known_source(email, domain, options, dns),
        Source.ISPDB: lambda: ispdb_source(email, domain, options, dns),
        Source.SRV: lambda: srv_source(email, domain, dns),
        Source.MX: lambda: mx_source(email, domain, options, dns, state),
        Source.GUESS: lambda: guess(
            domain,
            email,
            dns,
            timeout=timeout,
            port_map=options.port_map,
            ca_file=options.probe_ca_file,
        ),
    }
    tasks = {s: t for s, t in tasks.items() if s in options.sources}
    results: queue.Queue[tuple[Source, list[Candidate] | MailbagError]] = queue.Queue()

    def run(source: Source, task: Callable[[], list[Candidate]]) -> None:
        try:
            results.put((source, task()))
        except MailbagError as exc:
            results.put((source, exc))

    for source, task in tasks.items():
        # daemon threads: a slow source must not keep the program alive after we chose
        threading.Thread(
            target=run, args=(source, task), daemon=True, name=f"discover-{source}"
        ).start()

    found: list[Candidate] = []
    reports: dict[Source, SourceReport] = {}
    deadline = time.monotonic() + timeout * 2 + 1
    while len(reports) < len(tasks):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            source, outcome = results.get(timeout=left)
        except queue.Empty:
            break
        if isinstance(outcome, MailbagError):
            reports[source] = SourceReport(source, "failed", outcome.message)
            continue
        found.extend(outcome)
        if "mx_domain" in state:  # the MX's registered domain may be used from now on
            allowed.add(state["mx_domain"])
        reports[source] = SourceReport(
            source, "found" if outcome else "nothing", f"{len(outcome)} server(s)"
        )
        if _settled(found, reports, tasks, options, allowed):
            break
    settled = _settled(found, reports, tasks, options, allowed)
    for source in tasks:
        if source not in reports:
            reports[source] = (
                SourceReport(source, "skipped", "not waited for: a higher-priority source answered")
                if settled
                else SourceReport(source, "failed", "timed out")
            )
    if "mx_domain" in state:
        allowed.add(state["mx_domain"])
    ordered = [reports[s] for s in Source if s in reports]
    return _finish(email, found, ordered, allowed, options)


def _settled(
    found: list[Candidate],
    reports: dict[Source, SourceReport],
    tasks: dict[Source, Callable[[], list[Candidate]]],
    options: DiscoveryOptions,
    allowed: set[str],
) -> bool:
    """True when a usable answer came in and every higher-priority source has finished."""
    incoming, smtp = choose(
        _mark_trust(found, allowed), protocol=options.protocol, insecure=options.insecure
    )
    if incoming is None or smtp is None:
        return False
    worst = max(incoming.source.priority, smtp.source.priority)
    return all(s in reports for s in tasks if s.priority < worst)


def _finish(
    email: str,
    found: list[Candidate],
    reports: list[SourceReport],
    allowed: set[str],
    options: DiscoveryOptions,
) -> Discovery:
    candidates = _mark_trust(found, allowed)
    candidates.sort(key=lambda c: (c.source.priority, c.rank))
    incoming, smtp = choose(candidates, protocol=options.protocol, insecure=options.insecure)
    return Discovery(
        email=email,
        candidates=tuple(candidates),
        incoming=incoming,
        smtp=smtp,
        reports=tuple(reports),
        allowed_domains=tuple(sorted(allowed)),
        problems=tuple(_problems(candidates, incoming, smtp, options)),
    )
