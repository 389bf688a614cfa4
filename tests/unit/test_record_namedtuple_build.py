"""`mailbag.record.NamedTuple` classes are made without compiling anything (their
`__new__` is a copy of a template compiled with the module), and behave exactly as the
class `collections.namedtuple` makes, whatever their number of fields."""

from __future__ import annotations

import builtins
import collections
import copy
import pickle
from typing import Any

import pytest

from mailbag import record
from mailbag.record import NamedTuple

NAMES = "abcdefghijklmnopqrstuvwxyz"


def _both(count: int, defaults: int) -> tuple[Any, Any]:
    """A record.NamedTuple class and a collections.namedtuple class of `count` fields
    (named a, b, ...), the last `defaults` of them with defaults."""
    fields = [f"f{NAMES[i]}" for i in range(count)]
    values = tuple(range(100, 100 + defaults))
    ns: dict[str, Any] = {"__annotations__": dict.fromkeys(fields, "int"), "__module__": __name__}
    ns.update(zip(fields[count - defaults :], values, strict=True))
    ours = record._NamedTupleMeta("Rec", (record._NamedTupleBase,), ns)
    theirs = collections.namedtuple("Rec", fields, defaults=values, module=__name__)
    return ours, theirs


def _outcome(call: Any) -> Any:
    try:
        return ("ok", call())
    except (TypeError, ValueError) as exc:
        return (type(exc), str(exc))


def _calls(cls: Any, instance: Any, args: tuple[int, ...]) -> list[Any]:
    return [
        lambda: cls(),
        lambda: cls(*args, 1),
        lambda: cls(*args, fa=1),
        lambda: cls(nope=1),
        lambda: cls._make(args[:-1]),
        lambda: cls._make(args),
        lambda: instance._replace(fa=7),
        lambda: instance._replace(nope=7),
    ]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 12, 13, 24])
def test_a_class_behaves_as_collections_namedtuple(count: int) -> None:
    for defaults in sorted({0, 1, count}):
        ours, theirs = _both(count, defaults)
        args = tuple(range(count))
        a, b = ours(*args), theirs(*args)
        assert tuple(a) == tuple(b) == args and a == b and hash(a) == hash(b)
        assert repr(a) == repr(b) and a._asdict() == b._asdict()
        assert ours._fields == theirs._fields and ours.__match_args__ == theirs.__match_args__
        assert ours._field_defaults == theirs._field_defaults
        assert ours.__doc__ == theirs.__doc__ and ours.__module__ == theirs.__module__
        assert ours.__new__.__defaults__ == theirs.__new__.__defaults__
        assert ours.__new__.__doc__ == theirs.__new__.__doc__
        assert ours.fa.__doc__ == theirs.fa.__doc__
        assert type(ours.fa) is type(theirs.fa)
        assert a.__slots__ == () and not hasattr(a, "__dict__")
        kwargs = {f: i for i, f in enumerate(ours._fields)}
        assert tuple(ours(**kwargs)) == tuple(theirs(**kwargs))
        # right and wrong calls: the same results, the same errors and messages
        for mine, other in zip(_calls(ours, a, args), _calls(theirs, b, args), strict=True):
            mine, other = _outcome(mine), _outcome(other)
            if mine[0] == "ok":
                assert other[0] == "ok" and tuple(mine[1]) == tuple(other[1])
                assert type(mine[1]) is ours
            else:
                assert mine == other
        assert copy.copy(a) == a and copy.deepcopy(a) == a
        assert a.__getnewargs__() == b.__getnewargs__()


class Pickled(NamedTuple):
    name: str
    size: int = 0


def test_instances_pickle_and_match() -> None:
    p = Pickled("x", 3)
    back = pickle.loads(pickle.dumps(p))  # noqa: S301 - our own bytes
    assert back == p and type(back) is Pickled
    match p:
        case Pickled(name, size):
            assert (name, size) == ("x", 3)
        case _:
            pytest.fail("no match")


def test_making_a_class_compiles_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled at class creation")

    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "compile", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)

    class Twelve(NamedTuple):
        a: int
        b: int
        c: int
        d: int
        e: int
        f: int
        g: int
        h: int
        i: int
        j: int
        k: int
        m: int = 0

    assert Twelve(*range(11)) == (*range(11), 0)
    assert Twelve(**{n: 1 for n in "abcdefghijk"}).k == 1


def test_a_field_name_starting_with_an_underscore_is_refused() -> None:
    with pytest.raises(ValueError, match="underscore"):

        class Bad(NamedTuple):
            _x: int
