"""`Record` and `FrozenRecord`: the base of the small value classes that load on
start-up paths, and `replace`.

Why not `@dataclass` there: on Python 3.11 a dataclass compiles its generated
methods when its module is imported (0.2-0.5 ms a class), and importing
`dataclasses` loads `inspect` (ast, dis, tokenize: ~5 ms). A `mailbag sync` with
nothing to do loaded ~40 dataclasses, 20-25 ms of a ~100 ms command (measured with
`python -X importtime`, valgrind instruction counts, and by timing
`dataclasses._process_class`).

A Record subclass lists its fields in `__slots__`, annotates each (in the order a
dataclass would list them) and writes its `__init__` (plain code, compiled once
into the .pyc like any other); `__repr__` and `__eq__` come from here and behave
as a dataclass's: fields in order (a subclass's after its base's), the same class
only, mutable records unhashable. A `FrozenRecord` is a frozen dataclass: its
`__init__` sets the fields with `_set`, assigning later raises AttributeError, and
it hashes by value. `replace(record, **changes)` is `dataclasses.replace` (it runs
`__init__`, so validation there runs again), and also takes dataclasses.
Immutable values without validation or inheritance may be a `NamedTuple` instead
(`_replace` is its `dataclasses.replace`), imported from here: it is
`typing.NamedTuple` for type checkers, and at run time builds the same class
without typing's checks of each field's annotation (each made a `ForwardRef` and
compiled, about half of a class's ~120 us; ~20 of them load with a sync).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar, TypeVar

    _T = TypeVar("_T")

__all__ = ["FrozenRecord", "Generic", "NamedTuple", "Record", "field_names", "replace"]


class Record:
    """Base class: `__repr__` and `__eq__` over the fields named in `__slots__`."""

    __slots__ = ()
    #: fields left out of `repr` and `==` (a dataclass's `field(repr=False, compare=False)`)
    _hidden: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def _all_fields(cls) -> tuple[str, ...]:
        """Every field, the base classes' first, each class's in the order it
        annotates them (`__slots__` is kept sorted)."""
        out: list[str] = []
        for klass in reversed(cls.__mro__):
            slots: Any = klass.__dict__.get("__slots__", ())
            names = (slots,) if isinstance(slots, str) else tuple(slots)
            # the class's own annotations, in source order (inspect.get_annotations would
            # load inspect, which this module exists to avoid)
            own = klass.__dict__.get("__annotations__", {})  # noqa: RUF063
            out += [n for n in own if n in names and n not in out]
            out += [n for n in names if n not in out]
        return tuple(out)

    @classmethod
    def _fields(cls) -> tuple[str, ...]:
        """The fields shown by `repr` and compared by `==`."""
        return tuple(n for n in cls._all_fields() if n not in cls._hidden)

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


class FrozenRecord(Record):
    """An immutable Record (a frozen dataclass): `__init__` sets each field once with
    `_set`; assigning or deleting a field afterwards raises AttributeError."""

    __slots__ = ()

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of {type(self).__name__}")

    def __hash__(self) -> int:  # type: ignore[override]  # immutable: hashable by value
        return hash(self._values())


def replace(obj: _T, /, **changes: Any) -> _T:
    """A copy of the record (or dataclass) `obj` with `changes`, made by its `__init__`."""
    if isinstance(obj, Record):
        values = {n: getattr(obj, n) for n in obj._all_fields()}
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"{type(obj).__name__} has no field {sorted(unknown)[0]!r}")
        values.update(changes)
        return type(obj)(**values)
    import dataclasses

    return dataclasses.replace(obj, **changes)  # type: ignore[type-var]


def field_names(record: Record | type[Record]) -> tuple[str, ...]:
    """The fields of a record (class), in order: `dataclasses.fields` for records."""
    return record._all_fields()


# --- NamedTuple, built without typing's checks of each annotation -----------------------

#: what a NamedTuple class body may not define (as for typing.NamedTuple)
_PROHIBITED = frozenset(
    {
        "__new__",
        "__init__",
        "__slots__",
        "__getnewargs__",
        "_fields",
        "_field_defaults",
        "_make",
        "_replace",
        "_asdict",
        "_source",
    }
)
_SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})


class _NamedTupleMeta(type):
    """What `typing.NamedTupleMeta` does (Python 3.11), but the annotations are kept as
    they are written (strings, under `from __future__ import annotations`), not checked
    and compiled one by one: `collections.namedtuple` with the class body's defaults,
    methods and docstring."""

    def __new__(mcls, typename: str, bases: tuple[type, ...], ns: dict[str, Any]) -> Any:
        import collections

        if bases != (_NamedTupleBase,):
            raise TypeError("a NamedTuple class can only inherit from NamedTuple")
        fields: dict[str, Any] = ns.get("__annotations__", {})
        defaults: list[Any] = []
        for name in fields:
            if name in ns:
                defaults.append(ns[name])
            elif defaults:
                raise TypeError(f"non-default namedtuple field {name} follows a default one")
        make: Any = collections.namedtuple  # (a class made at run time: no checks apply)
        cls = make(typename, list(fields), defaults=defaults, module=ns["__module__"])
        cls.__annotations__ = dict(fields)
        for key, value in ns.items():
            if key in _PROHIBITED:
                raise AttributeError("Cannot overwrite NamedTuple attribute " + key)
            if key not in _SPECIAL and key not in cls._fields:
                setattr(cls, key, value)
        return cls


_NamedTupleBase = type.__new__(_NamedTupleMeta, "NamedTuple", (), {})

if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
else:

    def NamedTuple(typename, fields=None, /, **kwargs):
        """The functional form is typing's own."""
        import typing

        return typing.NamedTuple(typename, fields, **kwargs)

    NamedTuple.__mro_entries__ = lambda bases: (_NamedTupleBase,)


# --- Generic, without loading typing -----------------------------------------------------

if TYPE_CHECKING:
    from typing import Generic as Generic
else:

    class Generic:
        """`typing.Generic` for type checkers; at run time a plain base whose subscript
        (`Base[T]`) is the class itself, so a module with a generic class need not load
        typing (~3 ms with what its other names build)."""

        __slots__ = ()

        def __class_getitem__(cls, params):
            return cls
