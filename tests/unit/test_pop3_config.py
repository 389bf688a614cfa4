"""POP3 options in config.toml: the README example, validation, and the planner's policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbag.config import PopOptions, parse_config
from mailbag.errors import ConfigError
from mailbag.sync.pop3 import policy_from_options
from mailbag.sync.pop3_plan import OversizeAction, PopPolicy

BASE = """
[accounts.home]
email = "me@example.org"
protocol = "pop3"
[accounts.home.incoming]
host = "pop.example.org"
port = 995
security = "ssl"
[accounts.home.smtp]
host = "smtp.example.org"
port = 465
security = "ssl"
"""


def readme_pop_block() -> str:
    readme = Path(__file__).resolve().parents[2] / "README.md"
    section = readme.read_text().split("## POP3\n", 1)[1]
    return section.split("```toml\n", 1)[1].split("```", 1)[0]


def test_readme_pop_example_is_valid_and_means_what_it_says(tmp_path: Path) -> None:
    config = parse_config(BASE + readme_pop_block(), tmp_path / "config.toml")
    pop = config.account("home").pop
    assert pop == PopOptions(
        leave_on_server=True,
        delete_after_days=14,
        delete_when_deleted_here=True,
        max_size=20_000_000,
        oversize="headers",
        max_per_session=500,
    )
    policy = policy_from_options(pop, mass_delete_limit=50)
    assert policy == PopPolicy(
        leave_on_server=True,
        delete_after_days=14,
        delete_when_deleted_here=True,
        max_size=20_000_000,
        oversize=OversizeAction.HEADERS,
        max_per_session=500,
        mass_delete_limit=50,
    )


def test_defaults_leave_everything_on_the_server(tmp_path: Path) -> None:
    pop = parse_config(BASE, tmp_path / "config.toml").account("home").pop
    policy = policy_from_options(pop)
    assert policy.leave_on_server and policy.delete_after_days is None
    assert not policy.delete_when_deleted_here and not policy.removes_right_after_download
    assert policy.oversize is OversizeAction.SKIP and policy.max_per_session is None


def test_arguments_override_the_file() -> None:
    pop = PopOptions(oversize="headers", max_per_session=10)
    policy = policy_from_options(pop, oversize=OversizeAction.SKIP, max_per_session=3)
    assert (policy.oversize, policy.max_per_session) == (OversizeAction.SKIP, 3)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('oversize = "truncate"', "oversize"),
        ("max_per_session = 0", "max_per_session"),
        ("delete_after_days = -1", "delete_after_days"),
    ],
)
def test_bad_pop_values_are_refused(tmp_path: Path, line: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(BASE + "[accounts.home.pop]\n" + line + "\n", tmp_path / "config.toml")
    assert key in str(err.value)
