"""The built-in provider table: settings the big providers publish in their own help pages.

Written by hand from each provider's documented settings (see
shared/FIELD-NOTES.md "Providers"); nothing here is copied from the ISPDB.
Looked up by the address's domain, and by the registered domain of the
domain's MX host (so company domains hosted by Google or Microsoft match).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailbag.autoconfig.clientconfig import ServerEntry, fill_placeholders
from mailbag.autoconfig.model import Candidate, Source
from mailbag.protocols.transport import Security

SSL = Security.SSL
STARTTLS = Security.STARTTLS
ADDR = "%EMAILADDRESS%"
PW = ("password",)
OAUTH = ("oauth2",)
PW_OAUTH = ("oauth2", "password")


def _s(
    protocol: str, host: str, port: int, sec: Security, auth: tuple[str, ...], user: str = ADDR
) -> ServerEntry:
    return ServerEntry(protocol, host, port, sec, user, auth)


@dataclass(frozen=True)
class Provider:
    name: str
    domains: tuple[str, ...]
    servers: tuple[ServerEntry, ...]
    #: registered domains of the provider's MX hosts (for hosted company domains)
    mx_domains: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    #: notes that only concern POP3
    pop_notes: tuple[str, ...] = ()
    #: notes that only concern IMAP
    imap_notes: tuple[str, ...] = ()

    def candidates(self, email: str, source: Source = Source.BUILTIN) -> list[Candidate]:
        out = []
        for rank, s in enumerate(self.servers):
            notes = [f"{self.name}: settings from mailbag's built-in provider table", *self.notes]
            if s.protocol == "pop3":
                notes += self.pop_notes
            elif s.protocol == "imap":
                notes += self.imap_notes
            out.append(
                Candidate(
                    protocol=s.protocol,
                    host=s.hostname,
                    port=s.port,
                    security=s.security,
                    username=fill_placeholders(s.username, email),
                    auth=s.auth,
                    source=source,
                    trusted=True,
                    notes=tuple(notes),
                    rank=rank,
                )
            )
        return out


APP_SPECIFIC_NOTE = "password login needs an app password (your normal password is refused)"

PROVIDERS: tuple[Provider, ...] = (
    Provider(
        "Outlook.com",
        (
            "outlook.com",
            "hotmail.com",
            "live.com",
            "msn.com",
            "hotmail.co.uk",
            "hotmail.fr",
            "hotmail.de",
            "hotmail.it",
            "hotmail.es",
            "live.co.uk",
            "live.fr",
            "live.de",
            "outlook.de",
            "outlook.fr",
            "outlook.es",
            "outlook.it",
            "outlook.co.uk",
        ),
        (
            _s("imap", "outlook.office365.com", 993, SSL, OAUTH),
            _s("pop3", "outlook.office365.com", 995, SSL, OAUTH),
            _s("smtp", "smtp-mail.outlook.com", 587, STARTTLS, OAUTH),
        ),
        notes=(
            "requires OAuth2: Microsoft turned off password login for IMAP, POP and SMTP "
            "on Outlook.com in September 2024",
        ),
        pop_notes=(
            "POP is off by default: turn it on in Outlook.com Settings > Mail > Forwarding "
            "and IMAP: https://outlook.live.com/mail/0/options/mail/forwarding",
        ),
        imap_notes=(
            "IMAP must be allowed in Outlook.com Settings > Mail > Forwarding and IMAP: "
            "https://outlook.live.com/mail/0/options/mail/forwarding",
        ),
    ),
    Provider(
        "Microsoft 365",
        ("office365.com", "onmicrosoft.com"),
        (
            _s("imap", "outlook.office365.com", 993, SSL, OAUTH),
            _s("pop3", "outlook.office365.com", 995, SSL, OAUTH),
            _s("smtp", "smtp.office365.com", 587, STARTTLS, OAUTH),
        ),
        # company domains whose MX is <tenant>.mail.protection.outlook.com
        mx_domains=("outlook.com",),
        notes=(
            "requires OAuth2 (Modern Authentication); the organisation's admin may have to "
            "allow IMAP/POP and SMTP AUTH for the mailbox "
            '("SmtpClientAuthentication is disabled" means SMTP AUTH is off)',
        ),
    ),
    Provider(
        "Gmail",
        ("gmail.com", "googlemail.com"),
        (
            _s("imap", "imap.gmail.com", 993, SSL, PW_OAUTH),
            _s("pop3", "pop.gmail.com", 995, SSL, PW_OAUTH),
            _s("smtp", "smtp.gmail.com", 465, SSL, PW_OAUTH),
            _s("smtp", "smtp.gmail.com", 587, STARTTLS, PW_OAUTH),
        ),
        notes=(
            "requires OAuth2 or an app password (app passwords need 2-Step Verification): "
            "https://myaccount.google.com/apppasswords",
        ),
        pop_notes=(
            "POP must be enabled first: Gmail Settings > Forwarding and POP/IMAP: "
            "https://mail.google.com/mail/u/0/#settings/fwdandpop",
        ),
    ),
    Provider(
        "Google Workspace",
        ("google.com",),
        (
            _s("imap", "imap.gmail.com", 993, SSL, PW_OAUTH),
            _s("pop3", "pop.gmail.com", 995, SSL, PW_OAUTH),
            _s("smtp", "smtp.gmail.com", 465, SSL, PW_OAUTH),
            _s("smtp", "smtp.gmail.com", 587, STARTTLS, PW_OAUTH),
        ),
        mx_domains=("google.com", "googlemail.com"),
        notes=(
            "Google Workspace: requires OAuth2 or an app password; your administrator may "
            "have to allow IMAP/POP access for the organisation",
        ),
        pop_notes=(
            "POP must be enabled first: Gmail Settings > Forwarding and POP/IMAP: "
            "https://mail.google.com/mail/u/0/#settings/fwdandpop",
        ),
    ),
    Provider(
        "Yahoo Mail",
        (
            "yahoo.com",
            "ymail.com",
            "rocketmail.com",
            "yahoo.co.uk",
            "yahoo.fr",
            "yahoo.de",
            "yahoo.es",
            "yahoo.it",
            "yahoo.ca",
            "yahoo.co.jp",
        ),
        (
            _s("imap", "imap.mail.yahoo.com", 993, SSL, PW_OAUTH),
            _s("pop3", "pop.mail.yahoo.com", 995, SSL, PW_OAUTH),
            _s("smtp", "smtp.mail.yahoo.com", 465, SSL, PW_OAUTH),
            _s("smtp", "smtp.mail.yahoo.com", 587, STARTTLS, PW_OAUTH),
        ),
        mx_domains=("yahoodns.net",),
        notes=(
            APP_SPECIFIC_NOTE + ": create one under Account security: "
            "https://login.yahoo.com/account/security",
        ),
    ),
    Provider(
        "AOL Mail",
        ("aol.com", "aim.com"),
        (
            _s("imap", "imap.aol.com", 993, SSL, PW_OAUTH),
            _s("pop3", "pop.aol.com", 995, SSL, PW_OAUTH),
            _s("smtp", "smtp.aol.com", 465, SSL, PW_OAUTH),
            _s("smtp", "smtp.aol.com", 587, STARTTLS, PW_OAUTH),
        ),
        notes=(
            APP_SPECIFIC_NOTE + ": create one under Account security: "
            "https://login.aol.com/account/security",
        ),
    ),
    Provider(
        "iCloud Mail",
        ("icloud.com", "me.com", "mac.com"),
        (
            # Apple documents the IMAP user name as the part before the @
            _s("imap", "imap.mail.me.com", 993, SSL, PW, user="%EMAILLOCALPART%"),
            _s("smtp", "smtp.mail.me.com", 587, STARTTLS, PW),
        ),
        mx_domains=("icloud.com",),
        notes=(
            "requires an app-specific password (appleid.apple.com > Sign-In and Security): "
            "https://appleid.apple.com",
            "iCloud has no POP3",
            "IMAP user name is the part of the address before the @ (if that fails, try "
            "the whole address: --username); SMTP uses the whole address",
        ),
    ),
    Provider(
        "Fastmail",
        ("fastmail.com", "fastmail.fm", "fastmail.net", "fastmail.org", "messagingengine.com"),
        (
            _s("imap", "imap.fastmail.com", 993, SSL, PW_OAUTH),
            _s("pop3", "pop.fastmail.com", 995, SSL, PW_OAUTH),
            _s("smtp", "smtp.fastmail.com", 465, SSL, PW_OAUTH),
            _s("smtp", "smtp.fastmail.com", 587, STARTTLS, PW_OAUTH),
        ),
        mx_domains=("messagingengine.com",),
        notes=(
            APP_SPECIFIC_NOTE + ": Settings > Privacy & Security > Integrations > New app "
            "password: https://www.fastmail.com/help/clients/apppassword.html",
        ),
    ),
    Provider(
        "GMX",
        ("gmx.net", "gmx.de", "gmx.at", "gmx.ch"),
        (
            _s("imap", "imap.gmx.net", 993, SSL, PW),
            _s("pop3", "pop.gmx.net", 995, SSL, PW),
            _s("smtp", "mail.gmx.net", 465, SSL, PW),
            _s("smtp", "mail.gmx.net", 587, STARTTLS, PW),
        ),
        mx_domains=("gmx.net",),
        notes=(
            "IMAP/POP access must be enabled first in the GMX web mail: "
            "E-Mail Settings > POP3 & IMAP: https://www.gmx.net/",
        ),
    ),
    Provider(
        "GMX (international)",
        ("gmx.com", "gmx.co.uk", "gmx.fr", "gmx.es", "gmx.us"),
        (
            _s("imap", "imap.gmx.com", 993, SSL, PW),
            _s("pop3", "pop.gmx.com", 995, SSL, PW),
            _s("smtp", "mail.gmx.com", 465, SSL, PW),
            _s("smtp", "mail.gmx.com", 587, STARTTLS, PW),
        ),
        notes=(
            "IMAP/POP access must be enabled first in the GMX web mail: "
            "Settings > POP3 & IMAP: https://www.gmx.com/",
        ),
    ),
    Provider(
        "WEB.DE",
        ("web.de",),
        (
            _s("imap", "imap.web.de", 993, SSL, PW),
            _s("pop3", "pop3.web.de", 995, SSL, PW),
            _s("smtp", "smtp.web.de", 587, STARTTLS, PW),
        ),
        notes=(
            "IMAP/POP access must be enabled first in the WEB.DE web mail: "
            "Settings > POP3/IMAP: https://web.de/",
        ),
    ),
    Provider(
        "Zoho Mail",
        ("zoho.com", "zohomail.com"),
        (
            _s("imap", "imap.zoho.com", 993, SSL, PW_OAUTH),
            _s("pop3", "pop.zoho.com", 995, SSL, PW_OAUTH),
            _s("smtp", "smtp.zoho.com", 465, SSL, PW_OAUTH),
            _s("smtp", "smtp.zoho.com", 587, STARTTLS, PW_OAUTH),
        ),
        mx_domains=("zoho.com",),
        notes=(
            "IMAP or POP access must be enabled first in Zoho Mail Settings > Mail Accounts: "
            "https://mail.zoho.com/",
            "with two-factor authentication on, use an application-specific password",
            "accounts in the EU/IN data centres use imap.zoho.eu / imap.zoho.in "
            "(and smtp.zoho.eu / smtp.zoho.in)",
        ),
    ),
    Provider(
        "Zoho Mail (EU)",
        ("zoho.eu", "zohomail.eu"),
        (
            _s("imap", "imap.zoho.eu", 993, SSL, PW_OAUTH),
            _s("pop3", "pop.zoho.eu", 995, SSL, PW_OAUTH),
            _s("smtp", "smtp.zoho.eu", 465, SSL, PW_OAUTH),
            _s("smtp", "smtp.zoho.eu", 587, STARTTLS, PW_OAUTH),
        ),
        mx_domains=("zoho.eu",),
        notes=(
            "IMAP or POP access must be enabled first in Zoho Mail Settings > Mail Accounts: "
            "https://mail.zoho.eu/",
        ),
    ),
    Provider(
        "Yandex Mail",
        ("yandex.ru", "yandex.com", "ya.ru", "yandex.by", "yandex.kz", "yandex.ua"),
        (
            _s("imap", "imap.yandex.com", 993, SSL, PW_OAUTH),
            _s("pop3", "pop.yandex.com", 995, SSL, PW_OAUTH),
            _s("smtp", "smtp.yandex.com", 465, SSL, PW_OAUTH),
        ),
        mx_domains=("yandex.net", "yandex.ru"),
        notes=(
            "access from mail programs must be enabled first in Yandex Mail settings "
            "(Mail clients): https://mail.yandex.com/#setup/client",
            APP_SPECIFIC_NOTE + ": https://id.yandex.com/security/app-passwords",
        ),
    ),
    Provider(
        "Mail.ru",
        ("mail.ru", "inbox.ru", "list.ru", "bk.ru", "internet.ru"),
        (
            _s("imap", "imap.mail.ru", 993, SSL, PW_OAUTH),
            _s("pop3", "pop.mail.ru", 995, SSL, PW_OAUTH),
            _s("smtp", "smtp.mail.ru", 465, SSL, PW_OAUTH),
        ),
        notes=(
            "requires a password for external applications, created in the Mail.ru account "
            "settings under Security: https://id.mail.ru/",
        ),
    ),
    Provider(
        "Telekom (T-Online)",
        ("t-online.de", "magenta.de"),
        (
            _s("imap", "secureimap.t-online.de", 993, SSL, PW),
            _s("pop3", "securepop.t-online.de", 995, SSL, PW),
            _s("smtp", "securesmtp.t-online.de", 465, SSL, PW),
            _s("smtp", "securesmtp.t-online.de", 587, STARTTLS, PW),
        ),
        notes=(
            "use the separate e-mail password set in the Telekom E-Mail Center "
            "(not the Telekom login password): https://email.t-online.de/",
        ),
    ),
    Provider(
        "Xfinity (Comcast)",
        ("comcast.net",),
        (
            _s("imap", "imap.comcast.net", 993, SSL, PW),
            _s("pop3", "pop3.comcast.net", 995, SSL, PW),
            _s("smtp", "smtp.comcast.net", 587, STARTTLS, PW),
            _s("smtp", "smtp.comcast.net", 465, SSL, PW),
        ),
        notes=(
            "third-party access must be turned on in Xfinity Connect settings > Security: "
            "https://connect.xfinity.com/",
        ),
    ),
    Provider(
        "Proton Mail (via Proton Mail Bridge)",
        ("proton.me", "protonmail.com", "protonmail.ch", "pm.me"),
        (
            _s("imap", "127.0.0.1", 1143, STARTTLS, PW),
            _s("smtp", "127.0.0.1", 1025, STARTTLS, PW),
        ),
        notes=(
            "Proton Mail is reached through Proton Mail Bridge running on this computer "
            "(localhost); install and sign in to the Bridge first: "
            "https://proton.me/mail/bridge",
            "use the password the Bridge shows for the account (not your Proton password)",
            "the Bridge uses a self-signed certificate: export it from the Bridge settings "
            "and pass it with --ca-file",
        ),
    ),
)


def _index(attr: str) -> dict[str, Provider]:
    out: dict[str, Provider] = {}
    for provider in PROVIDERS:
        for domain in getattr(provider, attr):
            out.setdefault(domain, provider)
    return out


_BY_DOMAIN = _index("domains")
_BY_MX = _index("mx_domains")


def provider_for_domain(domain: str) -> Provider | None:
    return _BY_DOMAIN.get(domain.lower().rstrip("."))


def provider_for_mx(registered_domain: str) -> Provider | None:
    """The provider whose MX hosts live under `registered_domain`, if we know one."""
    return _BY_MX.get(registered_domain.lower().rstrip("."))


def provider_for_host(host: str) -> Provider | None:
    """The provider that runs `host` (for hints in diagnostics: enable-POP URLs etc.)."""
    host = host.lower().rstrip(".")
    for provider in PROVIDERS:
        if any(s.hostname == host for s in provider.servers):
            return provider
    return None
