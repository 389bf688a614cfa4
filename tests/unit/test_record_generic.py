"""`mailbag.record.Generic`: `typing.Generic` for the type checker; at run time a plain
base whose subscript is the class itself, so modules on the sync path need not load
typing."""

from __future__ import annotations

from typing import TypeVar

from mailbag.record import Generic
from pyrun import python_words

T = TypeVar("T")


class Box(Generic[T]):
    def __init__(self, item: T) -> None:
        self.item = item


class IntBox(Box[int]):
    pass


def test_a_generic_class_and_its_subscripted_subclass_work_as_usual() -> None:
    assert Box[int] is Box
    box = IntBox(3)
    assert box.item == 3 and isinstance(box, Box)
    assert IntBox.__mro__[1] is Box


def test_the_sync_paths_modules_load_without_typing() -> None:
    code = (
        "import sys\n"
        "import mailbag.cli.main, mailbag.cli.cmd_sync, mailbag.config, mailbag.config.secrets\n"
        "import mailbag.sync.imap, mailbag.sync.apply, mailbag.sync.plan, mailbag.auth.login\n"
        "import mailbag.store.index, mailbag.store.fulltext, mailbag.protocols.imap.client\n"
        "print('typing' in sys.modules)\n"
    )
    assert python_words(code) == ["False"]
