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


# `__new__` of a class of 1 to 12 fields: these compiled with the module (the .pyc), each
# class gets a copy of one with its own parameter names (`_new_for`). collections.namedtuple
# compiles a `__new__` for every class with `eval` instead: ~115 us of the ~180 us it
# takes to make one (Python 3.11), and a `mailbag sync` makes ~20 such classes as it
# loads. A class of more fields gets collections.namedtuple's own.
_tuple_new = tuple.__new__


def _new1(_cls, a):  # type: ignore[no-untyped-def]
    return _tuple_new(_cls, (a,))


def _new2(_cls, a, b):  # type: ignore[no-untyped-def]
    return _tuple_new(_cls, (a, b))


def _new3(_cls, a, b, c):  # type: ignore[no-untyped-def]
    return _tuple_new(_cls, (a, b, c))


def _new4(_cls, a, b, c, d):  # type: ignore[no-untyped-def]
    return _tuple_new(_cls, (a, b, c, d))


def _new5(_cls, a, b, c, d, e):  # type: ignore[no-untyped-def]
    return _tuple_new(_cls, (a, b, c, d, e))


def _new6(_cls, a, b, c, d, e, f):  # type: ignore[no-untyped-def]
    return _tuple_new(_cls, (a, b, c, d, e, f))


def _new7(_cls, a, b, c, d, e, f, g):  # type: ignore[no-untyped-def]
    return _tuple_new(_cls, (a, b, c, d, e, f, g))


def _new8(_cls, a, b, c, d, e, f, g, h):  # type: ignore[no-untyped-def]
    return _tuple_new(_cls, (a, b, c, d, e, f, g, h))


def _new9(_cls, a, b, c, d, e, f, g, h, i):  # type: ignore[no-untyped-def]
    return _tuple_new(_cls, (a, b, c, d, e, f, g, h, i))


def _new10(_cls, a, b, c, d, e, f, g, h, i, j):  # type: ignore[no-untyped-def]
    return _tuple_new(_cls, (a, b, c, d, e, f, g, h, i, j))


def _new11(_cls, a, b, c, d, e, f, g, h, i, j, k):  # type: ignore[no-untyped-def]
    return _tuple_new(_cls, (a, b, c, d, e, f, g, h, i, j, k))


def _new12(_cls, a, b, c, d, e, f, g, h, i, j, k, m):  # type: ignore[no-untyped-def]
    return _tuple_new(_cls, (a, b, c, d, e, f, g, h, i, j, k, m))


_NEW = (_new1, _new2, _new3, _new4, _new5, _new6, _new7, _new8, _new9, _new10, _new11, _new12)


def _new_for(typename: str, fields: tuple[str, ...], defaults: tuple[Any, ...]) -> Any:
    """The class's `__new__(_cls, *fields)`, made without compiling; None when there is
    no template for that many fields."""
    import types

    if not 0 < len(fields) <= len(_NEW):
        return None
    template = _NEW[len(fields) - 1]
    code = template.__code__.replace(co_varnames=("_cls", *fields), co_name="__new__")
    new = types.FunctionType(code, template.__globals__, "__new__")
    new.__defaults__ = defaults
    new.__qualname__ = f"{typename}.__new__"
    new.__doc__ = f"Create new instance of {typename}({_arg_list(fields)})"
    return new


def _arg_list(fields: tuple[str, ...]) -> str:
    """The fields as their docstrings list them ("a, b"; "a," for one)."""
    return repr(fields).replace("'", "")[1:-1]


# the other methods of every such class: shared, as they read the fields from the class


def _make(cls: Any, iterable: Any) -> Any:
    """Make a new instance from a sequence or iterable."""
    made = _tuple_new(cls, iterable)
    if len(made) != len(cls._fields):
        raise TypeError(f"Expected {len(cls._fields)} arguments, got {len(made)}")
    return made


def _replace(self: Any, /, **changes: Any) -> Any:
    """Return a new instance replacing the fields given with new values."""
    made = self._make(map(changes.pop, self._fields, self))
    if changes:
        raise ValueError(f"Got unexpected field names: {list(changes)!r}")
    return made


def _repr(self: Any) -> str:
    shown = ", ".join(f"{name}={value!r}" for name, value in zip(self._fields, self, strict=True))
    return f"{self.__class__.__name__}({shown})"


def _asdict(self: Any) -> dict[str, Any]:
    """Return a new dict which maps field names to their values."""
    return dict(zip(self._fields, self, strict=True))


def _getnewargs(self: Any) -> tuple[Any, ...]:
    """Return self as a plain tuple. Used by copy and pickle."""
    return tuple(self)


def _namedtuple(
    typename: str, fields: tuple[str, ...], defaults: tuple[Any, ...], module: str
) -> Any:
    """The class `collections.namedtuple(typename, fields, defaults=defaults,
    module=module)` makes (the same attributes, methods and behaviour), without its
    `eval` (see `_new_for`)."""
    import collections

    new = _new_for(typename, fields, defaults)
    if new is None:
        make: Any = collections.namedtuple  # (a class made at run time: no checks apply)
        return make(typename, fields, defaults=defaults, module=module)
    for name in fields:  # (names from a class body's annotations: identifiers)
        if name.startswith("_"):
            raise ValueError(f"Field names cannot start with an underscore: {name!r}")
    getter: Any = getattr(collections, "_tuplegetter", None)
    namespace: dict[str, Any] = {
        "__doc__": f"{typename}({_arg_list(fields)})",
        "__slots__": (),
        "_fields": fields,
        "_field_defaults": dict(zip(fields[len(fields) - len(defaults) :], defaults, strict=True)),
        "__new__": new,
        "_make": classmethod(_make),
        "_replace": _replace,
        "__repr__": _repr,
        "_asdict": _asdict,
        "__getnewargs__": _getnewargs,
        "__match_args__": fields,
        "__module__": module,
    }
    for index, name in enumerate(fields):
        doc = f"Alias for field number {index}"
        if getter is not None:
            namespace[name] = getter(index, doc)
        else:  # (another Python: a property does the same, a little slower)
            import operator

            namespace[name] = property(operator.itemgetter(index), doc=doc)
    return type(typename, (tuple,), namespace)


class _NamedTupleMeta(type):
    """What `typing.NamedTupleMeta` does (Python 3.11), but the annotations are kept as
    they are written (strings, under `from __future__ import annotations`), not checked
    and compiled one by one: the class `collections.namedtuple` makes (`_namedtuple`)
    with the class body's defaults, methods and docstring."""

    def __new__(mcls, typename: str, bases: tuple[type, ...], ns: dict[str, Any]) -> Any:
        if bases != (_NamedTupleBase,):
            raise TypeError("a NamedTuple class can only inherit from NamedTuple")
        fields: dict[str, Any] = ns.get("__annotations__", {})
        defaults: list[Any] = []
        for name in fields:
            if name in ns:
                defaults.append(ns[name])
            elif defaults:
                raise TypeError(f"non-default namedtuple field {name} follows a default one")
        cls = _namedtuple(typename, tuple(fields), tuple(defaults), ns["__module__"])
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
