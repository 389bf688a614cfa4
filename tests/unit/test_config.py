"""config.toml: round trip, strict located validation, atomic writes, comments kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailbag.config import (
    Account,
    AuthMethod,
    PopOptions,
    Protocol,
    SecretRef,
    SecretSource,
    Server,
    SmtpServer,
    SyncOptions,
    load_config,
    remove_account,
    save_account,
    set_default_account,
)
from mailbag.config.file import locate, write_atomically
from mailbag.errors import ConfigError
from mailbag.paths import Paths
from mailbag.protocols.transport import Security


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths.from_env({"MAILBAG_HOME": str(tmp_path / "home")})


def make_account(name: str = "work", **kw: object) -> Account:
    incoming = Server(
        "imap.example.com",
        993,
        Security.SSL,
        "me@example.com",
        secret=SecretRef(SecretSource.KEYRING, f"{name}:incoming"),
    )
    smtp = SmtpServer(
        "smtp.example.com",
        587,
        Security.STARTTLS,
        "me@example.com",
        secret=SecretRef(SecretSource.KEYRING, f"{name}:incoming"),
    )
    values: dict[str, object] = {
        "name": name,
        "email": "me@example.com",
        "protocol": Protocol.IMAP,
        "incoming": incoming,
        "smtp": smtp,
    }
    values.update(kw)
    return Account(**values)  # type: ignore[arg-type]


def test_round_trip_minimal_keeps_file_small(paths: Paths) -> None:
    account = make_account()
    save_account(paths, account)
    config = load_config(paths)
    assert config.accounts == {"work": account}
    assert config.default_account == "work"
    assert config.account(None) == account
    text = paths.config_file.read_text()
    # defaults (keyring entry names, same SMTP credentials, sync/pop options) are not spelled out
    assert "keyring" not in text and "[accounts.work.sync]" not in text
    assert "password" not in text.replace("passwords are never kept here", "")


def test_round_trip_everything(paths: Paths, tmp_path: Path) -> None:
    account = make_account(
        "home",
        email="me@example.org",
        protocol=Protocol.POP3,
        display_name="Me Myself",
        identities=("alias@example.org", "other@example.org"),
        ca_file=tmp_path / "ca.pem",
        server_saves_sent=True,
        incoming=Server(
            "pop.example.org",
            995,
            Security.SSL,
            "me",
            auth=AuthMethod.OAUTH2,
            secret=SecretRef(SecretSource.COMMAND, "pass show mail/home"),
        ),
        smtp=SmtpServer(
            "smtp.example.org",
            465,
            Security.SSL,
            "sender",
            secret=SecretRef(SecretSource.KEYRING, "home:smtp"),
        ),
        sync=SyncOptions(include=("INBOX", "Lists/*"), exclude=("Spam",), mass_delete_threshold=7),
        pop=PopOptions(
            leave_on_server=False,
            delete_after_days=14,
            delete_when_deleted_here=True,
            max_size=10_000_000,
        ),
    )
    other = make_account("work")
    save_account(paths, other)
    save_account(paths, account, make_default=True)
    config = load_config(paths)
    assert config.accounts["home"] == account
    assert config.accounts["work"] == other
    assert config.default_account == "home"
    assert list(config.accounts) == ["work", "home"]


def test_smtp_without_auth_round_trips(paths: Paths) -> None:
    base = make_account()
    account = make_account(
        smtp=SmtpServer(
            "smtp.example.com",
            25,
            Security.STARTTLS,
            "me@example.com",
            secret=SecretRef(SecretSource.NONE, ""),
            requires_auth=False,
        )
    )
    assert base != account
    save_account(paths, account)
    assert load_config(paths).accounts["work"] == account
    assert "requires_auth = false" in paths.config_file.read_text()


def test_smtp_inherits_incoming_credentials_when_not_given(paths: Paths) -> None:
    paths.config_dir.mkdir(parents=True)
    paths.config_file.write_text(
        """
[accounts.w]
email = "a@b.example"
protocol = "imap"
[accounts.w.incoming]
host = "imap.b.example"
port = 993
security = "ssl"
username = "alogin"
password_command = "pass show w"
[accounts.w.smtp]
host = "smtp.b.example"
port = 465
security = "ssl"
"""
    )
    account = load_config(paths).account("w")
    assert account.smtp.username == "alogin"
    assert account.smtp.secret == SecretRef(SecretSource.COMMAND, "pass show w")
    assert account.incoming.username == "alogin"
    # lookup by email address too
    assert load_config(paths).account("A@b.example") == account


def test_comments_survive_rewrite(paths: Paths) -> None:
    save_account(paths, make_account())
    text = paths.config_file.read_text()
    text = "# my mail setup, hand edited\n" + text.replace(
        'host = "imap.example.com"', 'host = "imap.example.com"  # the old server'
    )
    text += "\n# end of file note\n"
    paths.config_file.write_text(text)
    changed = make_account(display_name="New Name")
    save_account(paths, changed)
    save_account(paths, make_account("second"))
    new = paths.config_file.read_text()
    assert "# my mail setup, hand edited" in new
    assert "# the old server" in new
    assert "# end of file note" in new
    config = load_config(paths)
    assert config.accounts["work"].display_name == "New Name"
    assert set(config.accounts) == {"work", "second"}


def test_unknown_key_names_file_line_and_key(paths: Paths) -> None:
    save_account(paths, make_account())
    lines = paths.config_file.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("port = 993"))
    lines.insert(at + 1, "prot = 143")
    paths.config_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(paths)
    err = info.value
    assert f"{paths.config_file}:{at + 2}:" in err.message
    assert "accounts.work.incoming.prot" in err.message
    assert err.fields["line"] == at + 2
    assert err.hint is not None and "port" in err.hint
    assert err.exit_code == 2


@pytest.mark.parametrize(
    ("snippet", "key", "words"),
    [
        ('security = "tls"', "accounts.x.incoming.security", "ssl, starttls, none"),
        ('port = "993"', "accounts.x.incoming.port", "whole number"),
        ("port = 99999", "accounts.x.incoming.port", "1-65535"),
        ('protocol = "mapi"', "accounts.x.protocol", "imap, pop3"),
        ("server_saves_sent = 1", "accounts.x.server_saves_sent", "true or false"),
        ('email = "nobody"', "accounts.x", "invalid email"),
        ('default = "ghost"', "default", "not configured"),
        ('colour = "blue"', "colour", "unknown key"),
    ],
)
def test_bad_values_are_located(paths: Paths, snippet: str, key: str, words: str) -> None:
    key_name = snippet.split(" = ")[0]
    base = {
        "email": '"x@example.com"',
        "protocol": '"imap"',
        "server_saves_sent": "false",
        "port": "993",
        "security": '"ssl"',
    }
    value = snippet.split(" = ", 1)[1]
    top = ""
    if key_name in ("default", "colour"):
        top = snippet + "\n"
    elif key_name in ("port", "security"):
        base[key_name] = value
    else:
        base[key_name] = value
    text = f"""{top}
[accounts.x]
email = {base["email"]}
protocol = {base["protocol"]}
server_saves_sent = {base["server_saves_sent"]}

[accounts.x.incoming]
host = "imap.example.com"
port = {base["port"]}
security = {base["security"]}

[accounts.x.smtp]
host = "smtp.example.com"
port = 587
security = "starttls"
"""
    paths.config_dir.mkdir(parents=True)
    paths.config_file.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(paths)
    err = info.value
    assert err.fields["key"] == key
    full = err.message + " " + (err.hint or "")
    assert words in full
    line = err.fields["line"]
    assert isinstance(line, int)
    assert f"{paths.config_file}:{line}:" in err.message


def test_syntax_error_has_line(paths: Paths) -> None:
    paths.config_dir.mkdir(parents=True)
    paths.config_file.write_text('[accounts.x]\nemail = "a@b.c"\nhost = imap\n')
    with pytest.raises(ConfigError) as info:
        load_config(paths)
    assert f"{paths.config_file}:3:" in info.value.message
    assert "TOML" in info.value.message


def test_missing_table_and_key(paths: Paths) -> None:
    paths.config_dir.mkdir(parents=True)
    paths.config_file.write_text('[accounts.x]\nemail = "a@b.c"\nprotocol = "imap"\n')
    with pytest.raises(ConfigError, match=r"config.toml:1: .*no \[accounts.x.incoming\]"):
        load_config(paths)


def test_save_refuses_to_clobber_a_broken_file(paths: Paths) -> None:
    paths.config_dir.mkdir(parents=True)
    paths.config_file.write_text("[accounts.x]\nbogus = 1\n")
    with pytest.raises(ConfigError):
        save_account(paths, make_account())
    assert paths.config_file.read_text() == "[accounts.x]\nbogus = 1\n"


def test_missing_file_is_empty_config_with_hint(paths: Paths) -> None:
    config = load_config(paths)
    assert config.accounts == {}
    assert config.default_account is None
    with pytest.raises(ConfigError) as info:
        config.account(None)
    assert info.value.hint is not None and "mailbag account add" in info.value.hint


def test_unknown_account_lists_known(paths: Paths) -> None:
    save_account(paths, make_account("a"))
    save_account(paths, make_account("b"))
    with pytest.raises(ConfigError) as info:
        load_config(paths).account("c")
    assert info.value.hint is not None and "a, b" in info.value.hint


def test_default_and_remove(paths: Paths) -> None:
    save_account(paths, make_account("a"))
    save_account(paths, make_account("b"))
    assert load_config(paths).default_account == "a"
    set_default_account(paths, "b")
    assert load_config(paths).default_account == "b"
    assert paths.config_file.read_text().startswith("# mailbag configuration")
    removed = remove_account(paths, "b")
    assert removed.name == "b"
    config = load_config(paths)
    assert list(config.accounts) == ["a"]
    assert config.default_account == "a"
    with pytest.raises(ConfigError):
        remove_account(paths, "b")


def test_discovery_section(paths: Paths) -> None:
    paths.config_dir.mkdir(parents=True)
    paths.config_file.write_text(
        '[discovery]\nispdb_url = "https://127.0.0.1:8443/v1.1/"\n'
        'dns_server = "127.0.0.1"\ndns_port = 5353\nhttps_port = 8443\ntimeout = 2\n'
    )
    d = load_config(paths).discovery
    assert (d.ispdb_url, d.dns_server, d.dns_port, d.https_port, d.timeout) == (
        "https://127.0.0.1:8443/v1.1/",
        "127.0.0.1",
        5353,
        8443,
        2.0,
    )
    paths.config_file.write_text('[discovery]\nispdb_url = "http://ispdb.example/"\n')
    with pytest.raises(ConfigError, match="https://"):
        load_config(paths)


def test_atomic_write_leaves_no_temp_and_old_file_on_failure(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_account(paths, make_account())
    before = paths.config_file.read_text()
    assert oct(paths.config_file.stat().st_mode & 0o777) == "0o600"

    def boom(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_atomically(paths.config_file, "garbage")
    assert paths.config_file.read_text() == before
    assert [p.name for p in paths.config_dir.iterdir()] == ["config.toml"]


def test_locate_handles_quoted_and_dotted_keys() -> None:
    text = '[accounts."my work"]\nincoming.host = "x"\n[accounts."my work".smtp]\nport = 1\n'
    assert locate(text, ("accounts", "my work", "incoming", "host")) == 2
    assert locate(text, ("accounts", "my work", "smtp", "port")) == 4
    assert locate(text, ("accounts", "my work")) == 1
    assert locate(text, ("nothing",)) is None


def test_readme_example_is_valid(tmp_path: Path) -> None:
    readme = Path(__file__).resolve().parents[2] / "README.md"
    text = readme.read_text()
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    from mailbag.config import parse_config

    config = parse_config(block, tmp_path / "config.toml")
    work = config.account("work")
    assert config.default_account == "work"
    assert work.incoming.secret == SecretRef(SecretSource.COMMAND, "pass show mail/work")
    assert work.smtp.secret == work.incoming.secret
