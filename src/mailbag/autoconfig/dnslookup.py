"""DNS look-ups discovery needs (SRV, MX, addresses), through a configurable resolver.

With `[discovery] dns_server` set, every name (also the hosts discovery
connects to) is resolved by that server: tests run one on 127.0.0.1.
"""

from __future__ import annotations

import functools
import socket
from dataclasses import dataclass
from typing import Any

from mailbag.config.model import DiscoverySettings
from mailbag.errors import NetworkError


@dataclass(frozen=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str  # without the trailing dot; "" means "." (service not offered)


class Dns:
    """A resolver per discovery run (no module state)."""

    def __init__(self, settings: DiscoverySettings) -> None:
        import dns.resolver

        self.custom = settings.dns_server is not None
        if settings.dns_server is not None:
            self._resolver = dns.resolver.Resolver(configure=False)
            self._resolver.nameservers = [settings.dns_server]
            self._resolver.port = settings.dns_port
        else:
            try:
                self._resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration as exc:
                raise NetworkError(
                    "no DNS resolver is configured on this machine",
                    hint="set [discovery] dns_server in config.toml",
                ) from exc
        self._resolver.lifetime = settings.timeout
        self._resolver.timeout = min(2.0, settings.timeout)

    def _query(self, name: str, rdtype: str) -> list[Any]:
        import dns.exception
        import dns.resolver

        try:
            answer = self._resolver.resolve(name, rdtype, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.resolver.NoNameservers as exc:
            raise NetworkError(f"DNS servers failed for {name} {rdtype}: {exc}") from exc
        except dns.exception.Timeout as exc:
            raise NetworkError(f"DNS look-up of {name} {rdtype} timed out") from exc
        except dns.exception.DNSException as exc:
            raise NetworkError(f"DNS look-up of {name} {rdtype} failed: {exc}") from exc
        return list(answer.rrset) if answer.rrset is not None else []

    def srv(self, name: str) -> list[SrvRecord]:
        """SRV records ordered by priority (lowest first), then weight (highest first)."""
        records = [
            SrvRecord(
                priority=int(r.priority),
                weight=int(r.weight),
                port=int(r.port),
                target=r.target.to_text(omit_final_dot=True).lower().rstrip("."),
            )
            for r in self._query(name, "SRV")
        ]
        return sorted(records, key=lambda r: (r.priority, -r.weight, r.target))

    def mx(self, domain: str) -> list[tuple[int, str]]:
        """(preference, host) ordered by preference, most preferred first."""
        out = [
            (int(r.preference), r.exchange.to_text(omit_final_dot=True).lower().rstrip("."))
            for r in self._query(domain, "MX")
        ]
        # sort numerically on preference (a comparator returning booleans is a known bug)
        return sorted((p, h) for p, h in out if h)

    def addresses(self, host: str) -> list[str]:
        """IP addresses for `host` ([] when it does not exist)."""
        if host == "localhost" or is_ip(host):
            return ["127.0.0.1"] if host == "localhost" else [host]
        if not self.custom:
            try:
                infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            except socket.gaierror:
                return []
            return list(dict.fromkeys(str(i[4][0]) for i in infos))
        found = [r.to_text() for r in self._query(host, "A")]
        found += [r.to_text() for r in self._query(host, "AAAA")]
        return found


def is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def registered_domain(host: str) -> str | None:
    """The registrable domain of `host` per the bundled Public Suffix List (no network)."""
    result = _psl().privatesuffix(host.lower().rstrip("."))
    return str(result) if result else None


@functools.cache
def _psl() -> Any:
    # parsing the bundled list takes tens of ms: once per process, on first use
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()
