"""The OAuth2 tables of config.toml: per account and once per provider."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbag.config import (
    Account,
    AuthMethod,
    OAuth2Settings,
    Protocol,
    SecretRef,
    SecretSource,
    Server,
    SmtpServer,
    load_config,
    save_account,
    save_oauth2_provider,
)
from mailbag.errors import ConfigError
from mailbag.paths import Paths
from mailbag.protocols.transport import Security
from mailbag.record import replace


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths.from_env({"MAILBAG_HOME": str(tmp_path / "home")})


def oauth_account(settings: OAuth2Settings | None) -> Account:
    ref = SecretRef(SecretSource.KEYRING, "mail:incoming")
    return Account(
        name="mail",
        email="me@outlook.com",
        protocol=Protocol.IMAP,
        incoming=Server(
            "outlook.office365.com", 993, Security.SSL, "me@outlook.com", AuthMethod.OAUTH2, ref
        ),
        smtp=SmtpServer(
            "smtp-mail.outlook.com",
            587,
            Security.STARTTLS,
            "me@outlook.com",
            AuthMethod.OAUTH2,
            ref,
        ),
        oauth2=settings,
    )


def test_account_oauth2_round_trip(paths: Paths) -> None:
    settings = OAuth2Settings(
        provider="microsoft", client_id="abc-123", tenant="consumers", scopes=("a", "b")
    )
    save_account(paths, oauth_account(settings))
    text = paths.config_file.read_text()
    assert "[accounts.mail.oauth2]" in text and 'client_id = "abc-123"' in text
    assert "authorize_url" not in text  # empty values are not written
    loaded = load_config(paths).account("mail")
    assert loaded.oauth2 == settings
    assert loaded.incoming.auth is AuthMethod.OAUTH2
    # removing the settings removes the table
    save_account(paths, replace(loaded, oauth2=None))
    assert "[accounts.mail.oauth2]" not in paths.config_file.read_text()
    assert load_config(paths).account("mail").oauth2 is None


def test_provider_wide_settings(paths: Paths) -> None:
    save_account(paths, oauth_account(OAuth2Settings(provider="microsoft")))
    save_oauth2_provider(paths, OAuth2Settings(provider="microsoft", client_id="shared"))
    config = load_config(paths)
    assert config.oauth2["microsoft"].client_id == "shared"
    account = config.account("mail")
    assert account.oauth2 is not None
    assert account.oauth2.merged(config.oauth2["microsoft"]).client_id == "shared"
    assert "[oauth2.microsoft]" in paths.config_file.read_text()


def test_bad_oauth2_values_are_located(paths: Paths) -> None:
    paths.config_file.parent.mkdir(parents=True)
    base = (
        '[accounts.m]\nemail = "me@x.org"\nprotocol = "imap"\n'
        '[accounts.m.incoming]\nhost = "h"\nport = 993\nsecurity = "ssl"\nauth = "oauth2"\n'
        '[accounts.m.smtp]\nhost = "h"\nport = 465\nsecurity = "ssl"\n'
        "[accounts.m.oauth2]\n"
    )
    cases = {
        'provider = "yahoo"\n': "unknown OAuth2 provider",
        'token_url = "http://example.com/token"\n': "must be an https:// URL",
        'client_idd = "x"\n': "unknown key",
        "scopes = 1\n": "must be a list of strings",
    }
    for extra, expected in cases.items():
        paths.config_file.write_text(base + extra)
        with pytest.raises(ConfigError) as err:
            load_config(paths)
        assert expected in err.value.message, extra
        assert err.value.fields["line"] is not None
