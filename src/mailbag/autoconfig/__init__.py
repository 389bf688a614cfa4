"""Discovery of server settings from an email address (`mailbag autoconfig`, `account add`).

found = discover("you@example.com", DiscoveryOptions(settings=config.discovery))
found.incoming, found.smtp      # the choice, or None (see found.problems)
found.candidates                # everything every source suggested, with source and trust
found.oauth2                    # the <oAuth2> sign-in published with the chosen servers
"""

from mailbag.autoconfig.discover import choose, discover, split_address
from mailbag.autoconfig.model import (
    Candidate,
    Discovery,
    DiscoveryOptions,
    OAuth2Info,
    Source,
    SourceReport,
)
from mailbag.autoconfig.providers import (
    Provider,
    provider_for_domain,
    provider_for_host,
    provider_for_mx,
)

__all__ = [
    "Candidate",
    "Discovery",
    "DiscoveryOptions",
    "OAuth2Info",
    "Provider",
    "Source",
    "SourceReport",
    "choose",
    "discover",
    "provider_for_domain",
    "provider_for_host",
    "provider_for_mx",
    "split_address",
]
