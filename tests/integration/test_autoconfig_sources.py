"""Every discovery source against local servers: a DNS server and an HTTPS server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailbag.autoconfig import DiscoveryOptions, Source, discover
from mailbag.config.model import DiscoverySettings
from mailbag.protocols.transport import Security
from mailbag.sandbox import Sandbox
from mailbag.sandbox.certs import SandboxCerts, make_certs
from mailbag.sandbox.discovery import LocalDns, LocalHttps, client_config_xml

DOMAIN = "example.test"
EMAIL = f"jo@{DOMAIN}"
AUTOCONFIG = "/mail/config-v1.1.xml"
WELL_KNOWN = "/.well-known/autoconfig/mail/config-v1.1.xml"


@dataclass
class Net:
    dns: LocalDns
    web: LocalHttps
    certs: SandboxCerts

    def settings(self, **kw: object) -> DiscoverySettings:
        values: dict[str, object] = {
            "ispdb_url": f"https://localhost:{self.web.port}/v1.1/",
            "dns_server": self.dns.host,
            "dns_port": self.dns.port,
            "https_port": self.web.port,
            "ca_file": self.certs.ca_file,
            "timeout": 2.0,
        }
        values.update(kw)
        return DiscoverySettings(**values)  # type: ignore[arg-type]

    def options(self, **kw: object) -> DiscoveryOptions:
        settings_kw = {k: kw.pop(k) for k in list(kw) if k in ("timeout", "http_port")}
        kw.setdefault("sources", tuple(s for s in Source if s is not Source.GUESS))
        return DiscoveryOptions(settings=self.settings(**settings_kw), **kw)  # type: ignore[arg-type]

    def paths_requested(self) -> list[str]:
        return [p for _, p in self.web.requests]


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    certs = make_certs(
        tmp_path / "tls",
        names=("localhost", DOMAIN, f"*.{DOMAIN}", "mailhost.test", "*.mailhost.test"),
    )
    dns = LocalDns()
    for name in (DOMAIN, f"autoconfig.{DOMAIN}", "autoconfig.mailhost.test"):
        dns.add(name, "A", "127.0.0.1")
    with dns, LocalHttps(certs) as web:
        yield Net(dns, web, certs)


def xml(host_prefix: str, socket_type: str = "SSL", port: int = 993) -> bytes:
    return client_config_xml(
        DOMAIN,
        [
            ("imap", f"{host_prefix}imap.{DOMAIN}", port, socket_type),
            ("smtp", f"{host_prefix}smtp.{DOMAIN}", 465, "SSL"),
        ],
    )


def test_autoconfig_https_sends_address_only_over_https(net: Net) -> None:
    net.web.documents[AUTOCONFIG] = xml("ac-")
    found = discover(EMAIL, net.options())
    assert found.incoming is not None and found.incoming.source is Source.AUTOCONFIG
    assert found.incoming.host == f"ac-imap.{DOMAIN}" and found.incoming.trusted
    assert found.smtp is not None and found.smtp.host == f"ac-smtp.{DOMAIN}"
    hosts = {h for h, p in net.web.requests if p.startswith(AUTOCONFIG)}
    assert hosts == {f"autoconfig.{DOMAIN}:{net.web.port}"}
    assert f"{AUTOCONFIG}?emailaddress=jo@{DOMAIN}" in net.paths_requested()
    # the ISPDB is asked by domain only
    ispdb = [p for p in net.paths_requested() if p.startswith("/v1.1/")]
    assert all("jo" not in p for p in ispdb)


def test_well_known_when_autoconfig_host_has_nothing(net: Net) -> None:
    net.web.documents[WELL_KNOWN] = xml("wk-")
    found = discover(EMAIL, net.options())
    assert found.incoming is not None and found.incoming.source is Source.WELL_KNOWN
    statuses = {r.source: r.status for r in found.reports}
    assert statuses[Source.AUTOCONFIG] == "nothing"


def test_ispdb_by_domain(net: Net) -> None:
    net.web.documents[f"/v1.1/{DOMAIN}"] = xml("db-")
    found = discover(EMAIL, net.options())
    assert found.incoming is not None and found.incoming.source is Source.ISPDB
    assert f"/v1.1/{DOMAIN}" in net.paths_requested()


def test_priority_order_autoconfig_beats_ispdb_and_srv(net: Net) -> None:
    net.web.documents[AUTOCONFIG] = xml("ac-")
    net.web.documents[f"/v1.1/{DOMAIN}"] = xml("db-")
    net.dns.add(f"_imaps._tcp.{DOMAIN}", "SRV", f"0 1 993 srv-imap.{DOMAIN}.")
    net.dns.add(f"_submissions._tcp.{DOMAIN}", "SRV", f"0 1 465 srv-smtp.{DOMAIN}.")
    found = discover(EMAIL, net.options())
    assert found.incoming is not None and found.incoming.host == f"ac-imap.{DOMAIN}"
    assert found.smtp is not None and found.smtp.host == f"ac-smtp.{DOMAIN}"
    sources = [c.source for c in found.candidates]
    assert sources == sorted(sources, key=lambda s: s.priority)
    # when ISPDB is the best, it beats SRV
    del net.web.documents[AUTOCONFIG]
    found = discover(EMAIL, net.options())
    assert found.incoming is not None and found.incoming.source is Source.ISPDB


def test_srv_priorities_dot_and_trust(net: Net) -> None:
    net.dns.add(
        f"_imaps._tcp.{DOMAIN}",
        "SRV",
        f"20 1 993 backup-imap.{DOMAIN}.",
        f"10 1 1993 imap.{DOMAIN}.",
    )
    net.dns.add(f"_imap._tcp.{DOMAIN}", "SRV", f"0 1 143 imap.{DOMAIN}.")
    net.dns.add(f"_pop3s._tcp.{DOMAIN}", "SRV", "0 0 0 .")
    net.dns.add(f"_submission._tcp.{DOMAIN}", "SRV", f"0 1 587 smtp.{DOMAIN}.")
    found = discover(EMAIL, net.options())
    srv = [c for c in found.candidates if c.source is Source.SRV]
    assert [(c.host, c.port) for c in srv if c.protocol == "imap"] == [
        (f"imap.{DOMAIN}", 1993),
        (f"backup-imap.{DOMAIN}", 993),
        (f"imap.{DOMAIN}", 143),
    ]
    assert not [c for c in srv if c.protocol == "pop3"]
    assert all(c.trusted for c in srv)
    assert found.incoming is not None
    assert (found.incoming.port, found.incoming.security) == (1993, Security.SSL)
    assert found.smtp is not None and found.smtp.security is Security.STARTTLS

    # POP3 asked for, but the domain said "." for it: nothing is chosen
    found = discover(EMAIL, net.options(protocol="pop3"))
    assert found.incoming is None
    assert any("no incoming server settings were found" in p for p in found.problems)


def test_srv_target_outside_domain_needs_confirmation(net: Net) -> None:
    net.dns.add(f"_imaps._tcp.{DOMAIN}", "SRV", "0 1 993 imap.elsewhere.test.")
    net.dns.add(f"_submissions._tcp.{DOMAIN}", "SRV", "0 1 465 smtp.elsewhere.test.")
    found = discover(EMAIL, net.options())
    assert found.incoming is None and found.smtp is None
    assert all(not c.trusted for c in found.candidates)
    assert any("elsewhere.test" in n for n in found.candidates[0].notes)
    assert any("--trust-domain elsewhere.test" in p for p in found.problems)
    # once the user names that domain, it may be used
    found = discover(EMAIL, net.options(allow_domains=frozenset({"elsewhere.test"})))
    assert found.incoming is not None and found.incoming.host == "imap.elsewhere.test"


def test_mx_registered_domain_then_its_ispdb(net: Net) -> None:
    net.dns.add(DOMAIN, "MX", "20 mx2.other.test.", "10 mx1.eu.mailhost.test.")
    net.web.documents["/v1.1/mailhost.test"] = client_config_xml(
        "mailhost.test",
        [("imap", "imap.mailhost.test", 993, "SSL"), ("smtp", "smtp.mailhost.test", 465, "SSL")],
    )
    found = discover(EMAIL, net.options())
    assert found.incoming is not None and found.incoming.source is Source.MX
    assert found.incoming.host == "imap.mailhost.test" and found.incoming.trusted
    assert any("mx1.eu.mailhost.test" in n for n in found.incoming.notes)
    assert "mailhost.test" in found.allowed_domains
    # the most preferred MX (10) was used, not the first listed; other.test was never asked
    assert not any("other.test" in p for p in net.paths_requested())
    # the MX's domain never gets the address
    assert not any("jo" in p for p in net.paths_requested() if "mailhost" in p)


def test_mx_pointing_at_a_known_provider(net: Net) -> None:
    net.dns.add(DOMAIN, "MX", "1 aspmx.l.google.com.", "5 alt1.aspmx.l.google.com.")
    found = discover(EMAIL, net.options())
    assert found.incoming is not None and found.incoming.host == "imap.gmail.com"
    assert found.incoming.source is Source.MX


def test_never_fails_up_to_parent_domains(net: Net) -> None:
    sub = f"jo@dept.{DOMAIN}"
    net.web.documents[AUTOCONFIG] = xml("parent-")  # would answer for any host name
    found = discover(sub, net.options())
    asked = {name for name, _ in net.dns.queries}
    # only the address's own domain (and its autoconfig host) were looked up
    assert f"autoconfig.{DOMAIN}" not in asked
    assert all(name.endswith(f"dept.{DOMAIN}") for name in asked)
    assert found.incoming is None  # autoconfig.dept.example.test does not exist


def test_plaintext_is_refused_without_insecure(net: Net) -> None:
    net.web.documents[AUTOCONFIG] = client_config_xml(
        DOMAIN,
        [("imap", f"imap.{DOMAIN}", 143, "plain"), ("smtp", f"smtp.{DOMAIN}", 465, "SSL")],
    )
    found = discover(EMAIL, net.options())
    assert found.incoming is None
    assert found.smtp is not None
    assert any("unencrypted" in p and "--insecure" in p for p in found.problems)
    found = discover(EMAIL, net.options(insecure=True))
    assert found.incoming is not None and found.incoming.security is Security.NONE


def test_plain_http_only_with_consent_and_without_address(net: Net, tmp_path: Path) -> None:
    with LocalHttps(net.certs, {AUTOCONFIG: xml("http-")}, tls=False) as http:
        found = discover(EMAIL, net.options(http_port=http.port))
        assert found.incoming is None
        assert http.requests == []
        found = discover(EMAIL, net.options(http_port=http.port, allow_http=True))
    assert http.requests == [(f"autoconfig.{DOMAIN}:{http.port}", AUTOCONFIG)]
    http_cands = [c for c in found.candidates if any("plain HTTP" in n for n in c.notes)]
    assert http_cands
    # inside the address's domain, so usable once the user consented to HTTP
    assert found.incoming is not None and found.incoming.host == f"http-imap.{DOMAIN}"


def test_untrusted_certificate_on_autoconfig_host_fails_that_source(
    net: Net, tmp_path: Path
) -> None:
    net.web.documents[AUTOCONFIG] = xml("ac-")
    other = make_certs(tmp_path / "other-ca")
    found = discover(
        EMAIL,
        DiscoveryOptions(
            settings=net.settings(ca_file=other.ca_file),
            sources=(Source.AUTOCONFIG,),
        ),
    )
    assert found.incoming is None
    report = found.reports[0]
    assert report.status == "failed" and "certificate" in report.detail


def test_guessing_against_the_sandbox(sandbox: Sandbox) -> None:
    domain = sandbox.domain
    dns = LocalDns()
    for name in (f"imap.{domain}", f"smtp.{domain}", f"pop3.{domain}"):
        dns.add(name, "A", "127.0.0.1")
    port_map = {
        993: sandbox.ports.imaps,
        143: sandbox.ports.imap,
        995: sandbox.ports.pop3s,
        110: sandbox.ports.pop3,
        465: sandbox.smtps_port,
        587: sandbox.smtp_port,
    }
    with dns:
        found = discover(
            sandbox.address("alice"),
            DiscoveryOptions(
                # (timeouts to spare: a dozen TLS probes at once on a loaded machine; the
                # search ends when they answer, it waits for none)
                settings=DiscoverySettings(
                    dns_server=dns.host, dns_port=dns.port, timeout=10.0, ca_file=sandbox.ca_file
                ),
                sources=(Source.GUESS,),
                port_map=port_map,
                probe_ca_file=sandbox.ca_file,
            ),
        )
    got = {(c.protocol, c.port, c.security) for c in found.candidates}
    assert ("imap", sandbox.ports.imaps, Security.SSL) in got
    assert ("imap", sandbox.ports.imap, Security.STARTTLS) in got
    assert ("pop3", sandbox.ports.pop3s, Security.SSL) in got
    assert ("pop3", sandbox.ports.pop3, Security.STARTTLS) in got
    assert ("smtp", sandbox.smtps_port, Security.SSL) in got
    assert ("smtp", sandbox.smtp_port, Security.STARTTLS) in got
    assert found.incoming is not None
    assert (found.incoming.host, found.incoming.port) == (f"imap.{domain}", sandbox.ports.imaps)
    assert found.incoming.username == sandbox.address("alice")
    assert found.smtp is not None and found.smtp.security is Security.SSL
    assert all(c.source is Source.GUESS for c in found.candidates)


def test_guess_without_ca_marks_certificate_problem(sandbox: Sandbox) -> None:
    domain = sandbox.domain
    with LocalDns({(f"imap.{domain}", "A"): ["127.0.0.1"]}) as dns:
        found = discover(
            sandbox.address("bob"),
            DiscoveryOptions(
                settings=DiscoverySettings(dns_server=dns.host, dns_port=dns.port, timeout=10.0),
                sources=(Source.GUESS,),
                port_map={993: sandbox.ports.imaps, 143: sandbox.ports.imap},
            ),
        )
    ssl_cand = next(c for c in found.candidates if c.security is Security.SSL)
    assert not ssl_cand.trusted
    assert any("certificate problem" in n for n in ssl_cand.notes)
    # STARTTLS was offered on 143, so that one is still usable
    assert found.incoming is not None and found.incoming.security is Security.STARTTLS


def test_a_stuck_source_costs_only_its_timeout(net: Net) -> None:
    import time

    from mailbag.sandbox.faults import SilentServer

    net.dns.add(f"_imaps._tcp.{DOMAIN}", "SRV", f"0 1 993 imap.{DOMAIN}.")
    net.dns.add(f"_submissions._tcp.{DOMAIN}", "SRV", f"0 1 465 smtp.{DOMAIN}.")
    with SilentServer() as silent:
        # autoconfig and well-known hang (accept, never answer); ISPDB has nothing
        options = DiscoveryOptions(
            settings=net.settings(https_port=silent.port, timeout=1.0),
            sources=tuple(s for s in Source if s is not Source.GUESS),
        )
        start = time.monotonic()
        found = discover(EMAIL, options)
        took = time.monotonic() - start
    # the sources' 1 s timeouts and the search's own deadline (2 timeouts + 1 s), with
    # room for a loaded machine (3.5 s was too little there); without the timeouts a
    # silent server holds the search until the test's own timeout
    assert took < 9, took
    assert found.incoming is not None and found.incoming.source is Source.SRV
    statuses = {r.source: r.status for r in found.reports}
    assert statuses[Source.AUTOCONFIG] == "failed"
    assert statuses[Source.SRV] == "found"


def test_guess_never_picks_a_server_without_starttls(net: Net) -> None:
    from mailbag.sandbox.faults import ScriptedServer

    def imap(line: bytes) -> bytes | None:
        tag = line.split(b" ", 1)[0]
        if b"CAPABILITY" in line.upper():
            return b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK done\r\n"
        return tag + b" OK bye\r\n" if b"LOGOUT" in line.upper() else None

    net.dns.add(f"imap.{DOMAIN}", "A", "127.0.0.1")
    with ScriptedServer(b"* OK plain IMAP ready\r\n", imap) as server:
        options = DiscoveryOptions(
            settings=net.settings(),
            sources=(Source.GUESS,),
            port_map={143: server.port, 993: 1},
        )
        found = discover(EMAIL, options)
        # imap.example.test and the bare domain both answer there
        assert {(c.port, c.security) for c in found.candidates} == {(server.port, Security.NONE)}
        assert found.incoming is None
        assert any("unencrypted" in p and "--insecure" in p for p in found.problems)
        # the probe read the greeting and capabilities only: no credentials
        assert not any(
            b"LOGIN" in line.upper() or b"AUTHENTICATE" in line.upper() for line in server.received
        )
        insecure = discover(EMAIL, DiscoveryOptions(**{**options.__dict__, "insecure": True}))
    assert insecure.incoming is not None and insecure.incoming.security is Security.NONE


def test_ispdb_servers_outside_the_domain_need_confirmation(net: Net) -> None:
    net.web.documents[f"/v1.1/{DOMAIN}"] = client_config_xml(
        DOMAIN,
        [("imap", "imap.bigisp.test", 993, "SSL"), ("smtp", "smtp.gmail.com", 465, "SSL")],
    )
    found = discover(EMAIL, net.options())
    imap = next(c for c in found.candidates if c.protocol == "imap")
    assert not imap.trusted and found.incoming is None
    assert any("--trust-domain bigisp.test" in n for n in imap.notes)
    # a host of the built-in provider table is known: no question for it
    assert found.smtp is not None and found.smtp.host == "smtp.gmail.com"
    found = discover(EMAIL, net.options(allow_domains=frozenset({"bigisp.test"})))
    assert found.incoming is not None and found.incoming.host == "imap.bigisp.test"
