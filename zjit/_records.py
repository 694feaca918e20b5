"""``@dataclass`` for zjit's value classes without importing :mod:`dataclasses`.

Start-up cost is the reason (docs/startup.md): importing ``dataclasses`` costs about
10 ms (it imports ``inspect``, ``ast``, ``dis``, ``tokenize``...) and decorating a
class about 0.5 ms (it compiles five or six methods), and a ``zjit run`` touches some
25 value classes. Modules write ``from zjit._records import dataclass, field``
and declare classes exactly as with the standard decorator; type checkers see the
standard one (``TYPE_CHECKING`` below), so typing is unchanged.

At run time :func:`record` builds the same methods from closures: ``__repr__``,
``__eq__``, ``__hash__`` (frozen classes; mutable ones are unhashable), the frozen
``__setattr__``/``__delattr__`` (raising :class:`dataclasses.FrozenInstanceError`),
``__match_args__``, ``__slots__`` with the pickling helpers and ``__init__`` (same
parameters, defaults, error messages and ``__post_init__`` call); nothing is
compiled, which is where the standard decorator spends its time. The classes stay
dataclasses for :mod:`dataclasses` itself: ``__dataclass_fields__`` and
``__dataclass_params__`` are computed on first access from an equivalent standard
dataclass, so ``fields``, ``replace``, ``asdict`` and ``is_dataclass`` work (and
import :mod:`dataclasses` then). Supported: the
``init``/``repr``/``eq``/``frozen``/``slots``/``match_args`` options, fields with
``default``, ``default_factory``, ``init``, ``repr``, ``hash`` and ``compare``; no
inheritance between dataclasses, ``InitVar``, ``order`` or ``unsafe_hash`` (those
raise TypeError at class creation). ``tests/test_records.py`` compares every
behaviour with the standard decorator.
"""

from __future__ import annotations

from _thread import get_ident

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

__all__ = ["asdict", "dataclass", "field", "record", "record_asdict", "record_field"]


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()
"""No default (the standard ``dataclasses.MISSING`` is not imported)."""
_SPECS = "__zjit_record_fields__"
"""Class attribute: the field specs, in declaration order."""
_OPTIONS = "__zjit_record_options__"


class FieldSpec:
    """What :func:`record_field` declares about one field."""

    __slots__ = ("name", "type", "default", "default_factory", "init", "repr", "hash", "compare")

    def __init__(self, default: Any, default_factory: Any, init: bool, repr: bool,
                 hash: bool | None, compare: bool) -> None:
        self.name = ""
        self.type: Any = None
        self.default = default
        self.default_factory = default_factory
        self.init = init
        self.repr = repr
        self.hash = hash
        self.compare = compare

    @property
    def hashed(self) -> bool:
        """Part of ``__hash__`` (as the standard rules decide)."""
        return self.compare if self.hash is None else self.hash


def record_field(*, default: Any = MISSING, default_factory: Any = MISSING, init: bool = True,
                 repr: bool = True, hash: bool | None = None, compare: bool = True,
                 metadata: Any = None, kw_only: Any = MISSING) -> Any:
    """The standard ``field()``, minus ``metadata`` and ``kw_only``."""
    if metadata is not None or kw_only is not MISSING:
        raise TypeError("zjit._records.field supports neither metadata nor kw_only")
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return FieldSpec(default, default_factory, init, repr, hash, compare)


def record(cls: Any = None, /, *, init: bool = True, repr: bool = True, eq: bool = True,
           order: bool = False, unsafe_hash: bool = False, frozen: bool = False,
           match_args: bool = True, kw_only: bool = False, slots: bool = False,
           weakref_slot: bool = False) -> Any:
    """The standard ``@dataclass`` decorator (the subset in the module docstring)."""
    if order or unsafe_hash or kw_only or weakref_slot:
        raise TypeError("zjit._records.dataclass supports neither order, unsafe_hash, kw_only "
                        "nor weakref_slot")

    def wrap(c: Any) -> Any:
        return _process(c, init, repr, eq, frozen, match_args, slots)

    return wrap if cls is None else wrap(cls)


# --------------------------------------------------------------------------- class set-up


def _is_classvar(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return isinstance(text, str) and text.split("[", 1)[0] in ("ClassVar", "typing.ClassVar")


def _collect(cls: type) -> list[FieldSpec]:
    for base in cls.__mro__[1:]:
        if _SPECS in base.__dict__ or "__dataclass_fields__" in base.__dict__:
            raise TypeError(f"{cls.__name__}: zjit._records does not support dataclass inheritance")
    specs: list[FieldSpec] = []
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if _is_classvar(annotation):
            continue
        text = annotation if isinstance(annotation, str) else ""
        if text.split("[", 1)[0].rsplit(".", 1)[-1] in ("InitVar", "KW_ONLY"):
            raise TypeError(f"{cls.__name__}.{name}: InitVar and KW_ONLY are not supported")
        value = cls.__dict__.get(name, MISSING)
        spec = value if isinstance(value, FieldSpec) else FieldSpec(value, MISSING, True, True, None, True)
        spec.name, spec.type = name, annotation
        default = spec.default
        if default is not MISSING and type(default).__hash__ is None:
            raise ValueError(f"mutable default {type(default)} for field {name} is not allowed: "
                             "use default_factory")
        if isinstance(value, FieldSpec):
            if default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, default)
        specs.append(spec)
    seen_default = False
    for spec in specs:
        if not spec.init:
            continue
        if spec.default is MISSING and spec.default_factory is MISSING:
            if seen_default:
                raise TypeError(f"non-default argument {spec.name!r} follows default argument")
        else:
            seen_default = True
    return specs


def _with_slots(cls: type, specs: list[FieldSpec]) -> type:
    if "__slots__" in cls.__dict__:
        raise TypeError(f"{cls.__name__} already specifies __slots__")
    names = tuple(s.name for s in specs)
    cls_dict = dict(cls.__dict__)
    cls_dict["__slots__"] = names
    for name in names:
        cls_dict.pop(name, None)
    cls_dict.pop("__dict__", None)
    cls_dict.pop("__weakref__", None)
    qualname = cls.__qualname__
    new = type(cls)(cls.__name__, cls.__bases__, cls_dict)
    new.__qualname__ = qualname
    return new


def _process(cls: Any, init: bool, repr: bool, eq: bool, frozen: bool,
             match_args: bool, slots: bool) -> Any:
    specs = _collect(cls)
    if slots:
        cls = _with_slots(cls, specs)
    own = cls.__dict__
    names = tuple(s.name for s in specs)
    setattr(cls, _SPECS, tuple(specs))
    setattr(cls, _OPTIONS, {"init": init, "repr": repr, "eq": eq, "frozen": frozen,
                            "match_args": match_args, "slots": slots})
    if init and "__init__" not in own:
        cls.__init__ = _init_fn(cls, tuple(specs), slots)
    if repr and "__repr__" not in own:
        cls.__repr__ = _repr_fn(tuple(s.name for s in specs if s.repr))
    has_explicit_hash = "__hash__" in own and not (own["__hash__"] is None and "__eq__" in own)
    if eq and "__eq__" not in own:
        cls.__eq__ = _eq_fn(tuple(s.name for s in specs if s.compare))
    if eq and not has_explicit_hash:
        cls.__hash__ = _hash_fn(tuple(s.name for s in specs if s.hashed)) if frozen else None
    if frozen:
        if "__setattr__" in own or "__delattr__" in own:
            raise TypeError(f"Cannot overwrite attribute __setattr__ in class {cls.__name__}")
        cls.__setattr__, cls.__delattr__ = _frozen_fns(cls, names)
        if slots and "__getstate__" not in own:
            cls.__getstate__ = _getstate
        if slots and "__setstate__" not in own:
            cls.__setstate__ = _setstate
    if cls.__doc__ is None:
        cls.__doc__ = f"{cls.__name__}({', '.join(_describe(s) for s in specs if s.init)})"
    if match_args and "__match_args__" not in own:
        setattr(cls, "__match_args__", tuple(s.name for s in specs if s.init))  # noqa: B010
    cls.__dataclass_fields__ = _StandardView("__dataclass_fields__")
    cls.__dataclass_params__ = _StandardView("__dataclass_params__")
    return cls


def _describe(spec: FieldSpec) -> str:
    text = f"{spec.name}: {spec.type!r}"
    if spec.default_factory is not MISSING:
        return text + " = <factory>"
    return text if spec.default is MISSING else f"{text} = {spec.default!r}"


# --------------------------------------------------------------------------- methods


def _init_fn(cls: Any, specs: tuple[FieldSpec, ...], slots: bool) -> Callable[..., None]:
    """The standard ``__init__`` (same parameters, defaults, factories and
    ``__post_init__`` call) without compiling code: a call passing every init field
    positionally stores them directly, anything else is bound by :func:`_bind`."""
    init_specs = tuple(s for s in specs if s.init)
    names = tuple(s.name for s in init_specs)
    count = len(names)
    later = tuple(s for s in specs if not s.init and (s.default is not MISSING
                                                      or s.default_factory is not MISSING))
    setters = tuple(cls.__dict__[n].__set__ for n in names) if slots else ()
    post_init = hasattr(cls, "__post_init__")
    qualname = f"{cls.__qualname__}.__init__"
    # Positional calls that leave out only trailing fields with plain defaults
    # (the common case) are completed from `defaults` without binding.
    required = next((i for i, s in enumerate(init_specs) if s.default is not MISSING
                     or s.default_factory is not MISSING), count)
    plain_tail = all(s.default_factory is MISSING for s in init_specs[required:])
    defaults = tuple(s.default for s in init_specs)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        values: Sequence[Any]
        if kwargs or not required <= len(args) <= count:
            values = _bind(qualname, init_specs, args, kwargs)
        elif len(args) == count:
            values = args
        elif plain_tail:
            values = args + defaults[len(args):]
        else:
            values = _bind(qualname, init_specs, args, kwargs)
        if slots:
            for store, value in zip(setters, values, strict=True):
                store(self, value)
        else:
            self.__dict__.update(zip(names, values, strict=True))
        for s in later:
            value = s.default_factory() if s.default_factory is not MISSING else s.default
            if slots:
                cls.__dict__[s.name].__set__(self, value)
            else:
                self.__dict__[s.name] = value
        if post_init:
            self.__post_init__()

    __init__.__qualname__ = qualname
    return __init__


def _bind(qualname: str, specs: tuple[FieldSpec, ...], args: tuple[Any, ...],
          kwargs: dict[str, Any]) -> list[Any]:
    """Field values for a call with keywords, defaults or factories (Python's errors)."""
    if len(args) > len(specs):
        required = sum(1 for s in specs if s.default is MISSING and s.default_factory is MISSING)
        takes = f"{len(specs) + 1}" if required == len(specs) else f"from {required + 1} to {len(specs) + 1}"
        raise TypeError(f"{qualname}() takes {takes} positional arguments but {len(args) + 1} were given")
    for s in specs[:len(args)]:
        if s.name in kwargs:
            raise TypeError(f"{qualname}() got multiple values for argument {s.name!r}")
    values = list(args)
    missing: list[str] = []
    for s in specs[len(args):]:
        if s.name in kwargs:
            values.append(kwargs.pop(s.name))
        elif s.default is not MISSING:
            values.append(s.default)
        elif s.default_factory is not MISSING:
            values.append(s.default_factory())
        else:
            missing.append(repr(s.name))
    if kwargs:
        raise TypeError(f"{qualname}() got an unexpected keyword argument {next(iter(kwargs))!r}")
    if missing:
        listed = missing[0] if len(missing) == 1 else (
            f"{missing[0]} and {missing[1]}" if len(missing) == 2 else ", ".join(missing[:-1]) + f", and {missing[-1]}")
        plural = "argument" if len(missing) == 1 else "arguments"
        raise TypeError(f"{qualname}() missing {len(missing)} required positional {plural}: {listed}")
    return values


def _repr_fn(names: tuple[str, ...]) -> Callable[[Any], str]:
    running: set[tuple[int, int]] = set()

    def __repr__(self: Any) -> str:
        key = (id(self), get_ident())
        if key in running:
            return "..."
        running.add(key)
        try:
            inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
        finally:
            running.discard(key)
        return f"{self.__class__.__qualname__}({inner})"

    return __repr__


def _eq_fn(names: tuple[str, ...]) -> Callable[[Any, object], Any]:
    def __eq__(self: Any, other: object) -> Any:
        if other.__class__ is self.__class__:
            return tuple([getattr(self, n) for n in names]) == tuple([getattr(other, n) for n in names])
        return NotImplemented

    return __eq__


def _hash_fn(names: tuple[str, ...]) -> Callable[[Any], int]:
    def __hash__(self: Any) -> int:
        return hash(tuple([getattr(self, n) for n in names]))

    return __hash__


def _frozen_error(message: str) -> Exception:
    from dataclasses import FrozenInstanceError

    return FrozenInstanceError(message)


def _frozen_fns(cls: Any, names: tuple[str, ...]) -> tuple[Callable[..., None], Callable[..., None]]:
    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise _frozen_error(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise _frozen_error(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    return __setattr__, __delattr__


def _getstate(self: Any) -> list[Any]:
    return [getattr(self, s.name) for s in getattr(self, _SPECS)]


def _setstate(self: Any, state: list[Any]) -> None:
    for s, value in zip(getattr(self, _SPECS), state, strict=False):
        object.__setattr__(self, s.name, value)


class _StandardView:
    """``__dataclass_fields__``/``__dataclass_params__`` computed on first access
    from the standard dataclass with the same fields and options."""

    def __init__(self, attr: str) -> None:
        self.attr = attr

    def __get__(self, obj: object, owner: Any) -> Any:
        import dataclasses

        specs: tuple[FieldSpec, ...] = getattr(owner, _SPECS)
        options = dict(getattr(owner, _OPTIONS))
        options.pop("slots")
        shadow = dataclasses.make_dataclass(owner.__name__, [
            (s.name, s.type, dataclasses.field(default=s.default if s.default is not MISSING else dataclasses.MISSING,
                                               default_factory=(s.default_factory if s.default_factory
                                                                is not MISSING else dataclasses.MISSING),
                                               init=s.init, repr=s.repr, hash=s.hash, compare=s.compare))
            for s in specs], **options)
        for attr in ("__dataclass_fields__", "__dataclass_params__"):
            type.__setattr__(owner, attr, getattr(shadow, attr))
        return getattr(shadow, self.attr)


# --------------------------------------------------------------------------- asdict

_ATOMS = (int, float, complex, str, bytes, bool, type(None))


def record_asdict(obj: Any, *, dict_factory: Callable[[list[tuple[str, Any]]], Any] = dict) -> Any:
    """The standard ``asdict()``, for records and standard dataclasses alike."""
    if not hasattr(type(obj), _SPECS):
        import dataclasses

        return dataclasses.asdict(obj, dict_factory=dict_factory)
    return _asdict_inner(obj, dict_factory)


def _asdict_inner(obj: Any, dict_factory: Callable[[list[tuple[str, Any]]], Any]) -> Any:
    if type(obj) in _ATOMS:
        return obj
    specs = getattr(type(obj), _SPECS, None)
    if specs is not None:
        return dict_factory([(s.name, _asdict_inner(getattr(obj, s.name), dict_factory)) for s in specs])
    if hasattr(type(obj), "__dataclass_fields__") or (isinstance(obj, tuple) and hasattr(obj, "_fields")):
        import dataclasses

        return dataclasses._asdict_inner(obj, dict_factory)  # type: ignore[attr-defined]
    if isinstance(obj, (list, tuple)):
        return type(obj)(_asdict_inner(v, dict_factory) for v in obj)
    if isinstance(obj, dict):
        return type(obj)((_asdict_inner(k, dict_factory), _asdict_inner(v, dict_factory))
                         for k, v in obj.items())
    import copy

    return copy.deepcopy(obj)


if TYPE_CHECKING:
    from dataclasses import asdict as asdict
    from dataclasses import dataclass as dataclass
    from dataclasses import field as field
else:
    dataclass = record
    field = record_field
    asdict = record_asdict
