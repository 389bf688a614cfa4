"""Fetching autoconfig documents: HTTPS, verified, size-limited, no redirects.

Redirects are not followed: a redirect could move the request (and the address
in it) to another domain. Plain HTTP exists only for the explicit-consent
path, and its callers never put the address into the URL.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from mailbag.autoconfig.dnslookup import Dns, is_ip
from mailbag.config.model import DiscoverySettings
from mailbag.errors import NetworkError, ProtocolError, TLSError
from mailbag.protocols.transport import make_tls_context

MAX_BYTES = 512 * 1024


def fetch(url: str, settings: DiscoverySettings, dns: Dns) -> bytes | None:
    """GET `url`; the body on 200, None on 404/410, NetworkError otherwise."""
    import httpx

    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ProtocolError(f"not an http(s) URL: {url}")
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = url
    headers = {"User-Agent": "mailbag-autoconfig", "Accept": "application/xml, text/xml"}
    extensions: dict[str, str] = {}
    if dns.custom and host != "localhost" and not is_ip(host):
        # resolve through the configured DNS server; TLS still checks the real name
        addrs = dns.addresses(host)
        if not addrs:
            raise NetworkError(f"{host} does not exist (no address in DNS)", cause="dns")
        ip = addrs[0]
        netloc = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        target = parts._replace(netloc=netloc).geturl()
        headers["Host"] = host if parts.port is None else f"{host}:{port}"
        extensions["sni_hostname"] = host
    verify = make_tls_context(settings.ca_file)
    try:
        with (
            httpx.Client(verify=verify, timeout=settings.timeout, follow_redirects=False) as client,
            client.stream("GET", target, headers=headers, extensions=extensions) as response,
        ):
            if response.status_code in (404, 410):
                return None
            if response.is_redirect:
                raise ProtocolError(
                    f"{host} answered with a redirect to {response.headers.get('location')!r}"
                    " (not followed)"
                )
            if response.status_code != 200:
                raise ProtocolError(f"{host} answered HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_BYTES:
                    raise ProtocolError(f"{host} sent more than {MAX_BYTES} bytes")
            return bytes(body)
    except httpx.ConnectError as exc:
        text = str(exc)
        if "CERTIFICATE" in text.upper():
            raise TLSError(f"{host}: certificate not valid: {text}", cause="certificate") from exc
        raise NetworkError(f"cannot connect to {host}:{port}: {text}", cause="connect") from exc
    except httpx.TimeoutException as exc:
        raise NetworkError(f"{host}:{port} timed out", cause="timeout") from exc
    except httpx.HTTPError as exc:
        raise NetworkError(f"fetching from {host} failed: {exc}", cause="http") from exc
