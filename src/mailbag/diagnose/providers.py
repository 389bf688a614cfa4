"""The one place the account test asks the built-in provider table for facts.

Kept behind one function so the test does not depend on how the table
(`mailbag.autoconfig.providers`) words its notes.
"""

from __future__ import annotations

import re

_URL = re.compile(r"https://\S+[^\s.,;)]")
_ENABLE = re.compile(r"enabl|turn it on|allow|must be|off by default", re.IGNORECASE)


def enable_settings_url(email: str, host: str, protocol: str) -> str | None:
    """Where the provider lets users turn `protocol` (imap/pop3) access on, if known.

    The provider is found by the address's domain, else by the server's host name.
    """
    from mailbag.autoconfig import provider_for_domain, provider_for_host

    domain = email.rpartition("@")[2]
    provider = provider_for_domain(domain) or provider_for_host(host)
    if provider is None:
        return None
    specific = {"pop3": provider.pop_notes, "imap": provider.imap_notes}.get(protocol, ())
    for note in (*specific, *provider.notes):
        if _ENABLE.search(note):
            found = _URL.search(note)
            if found:
                return found.group(0)
    return None
