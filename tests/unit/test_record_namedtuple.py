"""`mailbag.record.NamedTuple`: the classes it builds behave as `typing.NamedTuple`'s,
without typing's per-annotation checks (no ForwardRef compiled for each field)."""

from __future__ import annotations

import pickle
import typing

import pytest

from mailbag.record import NamedTuple


class Point(NamedTuple):
    """A point."""

    x: int
    y: int = 0
    label: str | None = None

    def moved(self, dx: int) -> Point:
        return self._replace(x=self.x + dx)

    @property
    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)

    @classmethod
    def origin(cls) -> Point:
        return cls(0)


class TypedPoint(typing.NamedTuple):
    """A point."""

    x: int
    y: int = 0
    label: str | None = None


def test_the_class_behaves_as_typings() -> None:
    p = Point(1, label="a")
    q = TypedPoint(1, label="a")
    assert tuple(p) == tuple(q) == (1, 0, "a")  # plain tuples, field by field
    assert isinstance(p, tuple)
    assert Point._fields == TypedPoint._fields == ("x", "y", "label")
    assert Point._field_defaults == TypedPoint._field_defaults == {"y": 0, "label": None}
    assert repr(p) == "Point(x=1, y=0, label='a')"
    assert Point.__doc__ == TypedPoint.__doc__ == "A point."
    assert Point.__qualname__ == "Point" and Point.__module__ == __name__
    assert p.moved(2) == Point(3, 0, "a") and p.norm1 == 1 and Point.origin() == (0, 0, None)
    assert p._asdict() == {"x": 1, "y": 0, "label": "a"}
    assert Point._make([4, 5, None]) == Point(4, 5)
    assert pickle.loads(pickle.dumps(p)) == p  # noqa: S301 - our own bytes
    with pytest.raises(AttributeError):
        p.x = 2  # type: ignore[misc]
    assert hash(p) == hash((1, 0, "a"))


def test_annotations_stay_as_written() -> None:
    assert Point.__annotations__ == {"x": "int", "y": "int", "label": "str | None"}
    assert isinstance(TypedPoint.__annotations__["x"], typing.ForwardRef)  # typing's cost
    assert typing.get_type_hints(Point) == {"x": int, "y": int, "label": str | None}


def test_what_typing_refuses_is_refused() -> None:
    with pytest.raises(TypeError):

        class Bad(NamedTuple):
            x: int = 0
            y: int  # type: ignore[misc]

    with pytest.raises(AttributeError):

        class Worse(NamedTuple):
            x: int

            def _replace(self) -> None:  # type: ignore[misc]
                pass

    with pytest.raises(TypeError):

        class Mixed(NamedTuple, dict):  # type: ignore[misc, type-arg]
            x: int


def test_the_functional_form_is_typings() -> None:
    Pair = NamedTuple("Pair", [("a", int), ("b", str)])
    assert Pair(1, "x")._fields == ("a", "b")
