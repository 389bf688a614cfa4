"""`Record`: the base of the small mutable value classes that load on start-up paths.

Why not `@dataclass` there: on Python 3.11 a dataclass compiles its generated
methods when its module is imported (0.2-0.5 ms a class), and importing
`dataclasses` loads `inspect` (ast, dis, tokenize: ~5 ms). A `mailbag sync` with
nothing to do loaded ~40 dataclasses, 20-25 ms of a ~100 ms command (measured with
`python -X importtime` and by timing `dataclasses._process_class`).

A Record subclass lists its fields in `__slots__`, annotates each (in the order a
dataclass would list them) and writes its `__init__` (plain code, compiled once
into the .pyc like any other); `__repr__` and `__eq__` come from here and behave
as a dataclass's: fields in order, the same class only, mutable records
unhashable. Immutable values use `typing.NamedTuple` instead (as cheap to define;
`_replace` is its `dataclasses.replace`).
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = ["Record"]


class Record:
    """Base class: `__repr__` and `__eq__` over the fields named in `__slots__`."""

    __slots__ = ()
    #: fields left out of `repr` and `==` (a dataclass's `field(repr=False, compare=False)`)
    _hidden: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def _fields(cls) -> tuple[str, ...]:
        """The fields in the order the class annotates them (`__slots__` is sorted)."""
        slots: Any = cls.__slots__
        names = (slots,) if isinstance(slots, str) else tuple(slots)
        # the class's own annotations, in source order (inspect.get_annotations would
        # load inspect, which this module exists to avoid)
        own = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
        ordered = [n for n in own if n in names]
        ordered += [n for n in names if n not in ordered]
        return tuple(n for n in ordered if n not in cls._hidden)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, n) for n in self._fields())

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields())
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable, as a dataclass
