"""zjit._records.dataclass behaves like the standard decorator (without importing it)."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import re
import subprocess
import sys
from typing import Any, ClassVar

import pytest

from zjit import _records
from zjit.image import ModuleImage, SegmentDesc
from zjit.policy import Policy
from zjit.result import Result, Trap


def _repr(obj: object) -> str:
    return re.sub(r" at 0x[0-9a-f]+", "", repr(obj))


def _pair(options: dict[str, Any], body: dict[str, Any], annotations: dict[str, str]) -> tuple[Any, Any]:
    """The same class decorated by the standard decorator and by zjit._records."""

    def make(decorator: Any, field: Any, name: str) -> Any:
        ns: dict[str, Any] = {"__annotations__": dict(annotations), "__module__": __name__,
                              "__doc__": "A test class."}
        for k, v in body.items():
            ns[k] = field(**v) if isinstance(v, dict) else v
        cls = decorator(**options)(type(name, (), ns))
        globals()[name] = cls  # picklable by reference
        return cls

    suffix = "_".join(f"{k}{int(v)}" for k, v in sorted(options.items()))
    return (make(dataclasses.dataclass, dataclasses.field, f"Std_{suffix}"),
            make(_records.record, _records.record_field, f"Rec_{suffix}"))


ANNOTATIONS = {"a": "int", "b": "str", "c": "list[int]", "d": "object", "k": "ClassVar[int]"}
BODY: dict[str, Any] = {"b": "x", "c": {"default_factory": list}, "d": {"default": None, "compare": False},
                        "k": 7}
OPTIONS = [{}, {"frozen": True}, {"slots": True}, {"frozen": True, "slots": True}, {"eq": False},
           {"repr": False}]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "plain")
def test_same_behaviour_as_dataclasses(options: dict[str, Any]) -> None:
    std, rec = _pair(options, BODY, ANNOTATIONS)
    s1, r1 = std(1), rec(1)
    s2, r2 = std(1, "y", [2], d="ignored"), rec(1, "y", [2], d="ignored")
    assert _repr(r1) == _repr(s1).replace(std.__qualname__, rec.__qualname__)
    assert (r1 == rec(1), r1 == r2, r1 != r2) == (s1 == std(1), s1 == s2, s1 != s2)
    assert (rec(1, "y", [2], 5) == rec(1, "y", [2], 6)) == (std(1, "y", [2], 5) == std(1, "y", [2], 6))
    assert (r1 == s1) is False and r1.__eq__(3) is NotImplemented or options.get("eq") is False
    assert (std.__hash__ is None) == (rec.__hash__ is None)
    if std.__hash__ is not None and options.get("frozen"):
        t_std, t_rec = std(1, "y", (), 4), rec(1, "y", (), 4)  # type: ignore[arg-type]
        assert hash(t_std) == hash(t_rec)
    assert rec.__match_args__ == std.__match_args__
    assert hasattr(rec, "__slots__") == hasattr(std, "__slots__")
    assert rec.k == 7 and rec(1).k == 7
    assert r1.c == [] and r1.c is not rec(1).c
    if options.get("frozen"):
        for obj in (s1, r1):
            with pytest.raises(dataclasses.FrozenInstanceError):
                obj.a = 2
            with pytest.raises(dataclasses.FrozenInstanceError):
                del obj.a
    else:
        r1.a = 5
        assert r1.a == 5
    # the dataclasses module sees a dataclass
    assert dataclasses.is_dataclass(rec) and dataclasses.is_dataclass(r2)
    assert [(f.name, f.type, f.compare) for f in dataclasses.fields(r2)] == \
        [(f.name, f.type, f.compare) for f in dataclasses.fields(s2)]
    assert dataclasses.asdict(r2) == dataclasses.asdict(s2) == _records.asdict(r2)
    assert dataclasses.astuple(r2) == dataclasses.astuple(s2)
    assert _repr(dataclasses.replace(r2, a=9)) == _repr(rec(9, "y", [2], "ignored"))
    assert rec.__dataclass_params__.frozen == std.__dataclass_params__.frozen
    for clone in (copy.copy(r2), copy.deepcopy(r2), pickle.loads(pickle.dumps(r2))):
        assert clone == r2 or options.get("eq") is False
        assert _repr(clone) == _repr(r2)


@pytest.mark.parametrize("options", OPTIONS[:4], ids=lambda o: ",".join(o) or "plain")
def test_same_init_binding_and_errors(options: dict[str, Any]) -> None:
    std, rec = _pair(options, {"b": "x", "c": {"default_factory": list}},
                     {"a": "int", "z": "int", "b": "str", "c": "list[int]"})
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((), {}), ((1,), {}), ((1, 2, 3, 4, 5), {}), ((1,), {"a": 2}), ((1,), {"q": 1}),
        ((), {"b": "y"}), ((1, "y"), {"c": [1]}), ((1, "y", [1]), {}), ((), {"a": 1, "c": [2]}),
    ]
    for args, kwargs in calls:
        outcomes = []
        for cls in (std, rec):
            try:
                outcomes.append(_repr(cls(*args, **kwargs)).replace(cls.__qualname__, "C"))
            except TypeError as exc:
                outcomes.append(str(exc).replace(cls.__qualname__, "C"))
        assert outcomes[0] == outcomes[1], (args, kwargs)


def test_post_init_and_errors() -> None:
    calls: list[int] = []

    @_records.record(frozen=True)
    class P:
        """P."""

        x: int
        n: ClassVar[int] = 0

        def __post_init__(self) -> None:
            calls.append(self.x)

    assert P(3).x == 3 and calls == [3]
    assert P.__match_args__ == ("x",)
    with pytest.raises(TypeError):
        P()  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="mutable default"):
        _pair({}, {"a": []}, {"a": "list[int]"})
    with pytest.raises(TypeError, match="non-default argument"):
        _pair({}, {"a": 1}, {"a": "int", "b": "int"})
    with pytest.raises(TypeError):
        _records.record(order=True)
    with pytest.raises(TypeError, match="inheritance"):
        _records.record(type("Q", (P,), {"__annotations__": {"y": "int"}}))
    with pytest.raises(ValueError):
        _records.record_field(default=1, default_factory=list)


def test_zjit_records_are_dataclasses() -> None:
    image = ModuleImage(code=b"\0" * 4, exports={"f": 0}, segments=(SegmentDesc("d", 0x1000, 4, "rw", b"ab"),))
    assert dataclasses.replace(image, entry_pc=4).entry_pc == 4
    assert [f.name for f in dataclasses.fields(Policy)][:2] == ["fuel", "mem_size"]
    policy = dataclasses.replace(Policy(fuel=5), opt_level=1)
    assert (policy.fuel, policy.opt_level) == (5, 1)
    assert Policy(extra={"a": 1}) == Policy() and hash(Policy(extra={"a": 1})) == hash(Policy())
    result = Result(Trap(kind=_trap_kind(), pc=4, cause=ValueError("x")), {"HL": 1}, None)
    assert result == dataclasses.replace(result, trap=Trap(_trap_kind(), 4))
    assert repr(SegmentDesc("d", 1, 2, "r")) == "SegmentDesc(name='d', base=1, size=2, perms='r', init=None)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        image.name = "x"  # type: ignore[misc]


def _trap_kind() -> Any:
    from zjit.isa import TrapKind

    return TrapKind.OOB


def test_no_dataclasses_import() -> None:
    code = ("import sys\nimport zjit._records as r\n"
            "@r.dataclass(frozen=True, slots=True)\nclass A:\n    x: int\n    y: tuple[int, ...] = r.field(default_factory=tuple)\n"
            "a = A(1)\nassert a == A(1) and hash(a) == hash(A(1)) and repr(a) == 'A(x=1, y=())'\n"
            "print('dataclasses' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
