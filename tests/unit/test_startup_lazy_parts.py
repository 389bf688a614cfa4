"""Parts of a sync compiled or loaded only when needed: `_fast_fetch`'s FETCH patterns
(none when no FETCH line comes, as in a sync where nothing changed) and `shlex` (not for
a password command without quotes). Each runs in a fresh interpreter."""

from __future__ import annotations

import random
import shlex

from mailbag.config.secrets import _argv
from pyrun import python_words


def test_the_fetch_patterns_are_compiled_with_the_first_fetch_line() -> None:
    out = python_words(
        """
        from mailbag.protocols.imap import parser
        for raw in (
            b'* LIST (\\\\HasNoChildren) "/" INBOX\\r\\n',
            b'* STATUS INBOX (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 1)\\r\\n',
            b'* 3 EXISTS\\r\\n',
            b'A1 OK done\\r\\n',
        ):
            parser.parse_raw(raw)
        print(parser._FAST is None)
        fetch = parser.parse_raw(b'* 2 FETCH (UID 7 FLAGS (\\\\Seen) MODSEQ (9))\\r\\n')
        print(parser._FAST is None, fetch.fetch.uid, fetch.fetch.flags, fetch.fetch.modseq)
        """
    )
    assert out == ["True", "False", "7", "('\\\\Seen',)", "9"]


def test_the_literal_and_escape_patterns_are_compiled_when_first_needed() -> None:
    out = python_words(
        """
        from mailbag.protocols.imap import parser
        for raw in (
            b'* OK [CAPABILITY IMAP4rev1] ready\\r\\n',
            b'* LIST (\\\\HasNoChildren) "/" INBOX\\r\\n',
            b'* STATUS INBOX (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 1)\\r\\n',
            b'A1 OK done\\r\\n',
        ):
            parser.parse_raw(raw)
        print(parser._LITERAL_AT_END is None, parser._UNESCAPE is None)
        listed = parser.parse_raw(b'* LIST () "/" "a\\\\"b"\\r\\n')
        print(parser._LITERAL_AT_END is None, parser._UNESCAPE is None, listed.values[-1])
        body = parser.parse_raw(b'* 1 FETCH (UID 9 BODY[] {3}\\r\\nabc)\\r\\n')
        print(parser._LITERAL_AT_END is None, body.fetch.uid, body.fetch.body)
        """
    )
    assert out == ["True", "True", "True", "False", "b'a\"b'", "False", "9", "b'abc'"]


def test_the_sasl_mechanisms_enum_is_built_on_first_use() -> None:
    out = python_words(
        """
        import sys
        from mailbag.protocols import sasl
        print(sasl.plain("a", "b") == b"\\x00a\\x00b", "Mechanism" in vars(sasl))
        print("mailbag.protocols.sasl_mechanisms" in sys.modules)
        print(sasl.choose({"LOGIN", "PLAIN"}, sasl.PASSWORD_MECHANISMS) is sasl.Mechanism.PLAIN)
        print(sasl.TOKEN_MECHANISMS[0] is sasl.Mechanism.OAUTHBEARER)
        try:
            sasl.NOPE
        except AttributeError as exc:
            print("refused", "NOPE" in str(exc))
        """
    )
    assert out == ["True", "False", "False", "True", "True", "refused", "True"]


def test_a_plain_password_command_is_split_without_shlex() -> None:
    out = python_words(
        """
        import sys
        from mailbag.config.secrets import _argv
        print(_argv("pass show mail/work"), "shlex" in sys.modules)
        print(_argv("pass show 'mail work'")[2], "shlex" in sys.modules)
        """
    )
    assert out == ["['pass',", "'show',", "'mail/work']", "False", "mail", "work", "True"]


def test_commands_split_as_shlex_splits_them() -> None:
    rng = random.Random(4)
    alphabet = "ab/-_.=@:,+% \t'\"\xa0\u2003x\x0b"
    for _ in range(3000):
        command = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        try:
            expected = shlex.split(command)
        except ValueError:
            continue  # (unbalanced quotes: refused either way, tested in test_secrets)
        if not expected:
            continue
        assert _argv(command) == expected, repr(command)


def test_the_program_loads_little_before_it_pauses_the_collector() -> None:
    # `cli.main.entry` pauses the collector first; what `mailbag.cli.main` itself loads
    # comes before that and is walked by collections meanwhile (~4M instructions)
    out = python_words(
        """
        import sys
        before = set(sys.modules)
        import mailbag.cli.main
        print(" ".join(sorted(set(sys.modules) - before)))
        """
    )
    heavy = {"pathlib", "threading", "re", "contextlib", "collections", "mailbag.paths"}
    assert heavy & set(out) == set()
    assert "mailbag.cli.main" in out
