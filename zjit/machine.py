"""Per-instance machine state and the contract between the runtime and engines.

The runtime (:mod:`zjit.runtime`) owns a :class:`Machine` per instance; an engine's
:class:`Executable` runs guest code against it and returns an :class:`Outcome`. All
engines (interpreter, native JIT, arm64) implement exactly this contract, which is
what lets the conformance suite run unchanged over every engine.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .isa import CTL_NO_HANDLER, CTL_RESP_TOO_LONG, NUM_REGS, TrapKind
from .policy import DEFAULT_MAX_OUTPUT_BYTES, LOG_RECORD_BYTES
from .result import BACKTRACE_KEEP

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Protocol, TextIO

    LogSink = Callable[[bytes, bytes], None] | BinaryIO | TextIO
else:
    # typing costs ~3 ms of start-up: at run time the contract classes below are
    # plain classes and ``LogSink`` (which needs typing.BinaryIO) is built on first
    # access by the module ``__getattr__``.
    Protocol = object

    def __getattr__(name: str) -> object:
        if name == "LogSink":
            from typing import BinaryIO, TextIO

            value = Callable[[bytes, bytes], None] | BinaryIO | TextIO
            globals()[name] = value
            return value
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

CtlHandler = Callable[[bytes], bytes | int]
_CTL_ERROR_MIN = -(1 << 63)
"""The most negative CTL error a handler may return (isa.md 2.8; HL is 64 bits)."""


class OutputLimitError(Exception):
    """The cause of the HOST trap of an OUT or LOG that would take a run's captured
    output plus kept log records past ``Policy.max_output_bytes`` (nothing of it is kept)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"captured output and log would exceed Policy.max_output_bytes ({limit} bytes)")
        self.limit = limit


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: object = _Default()
"""Sentinel: use the documented default (log -> stderr as ``[topic] msg``)."""


def _check_streams(stdin: object, stdout: object, ctl: object) -> None:
    """TypeError at once (not at the first IN or OUT) for host I/O of the wrong kind:
    text where bytes are meant, a text stream, an object that cannot read or write."""
    import io

    if isinstance(stdin, str):
        raise TypeError("stdin must be bytes or a binary stream, not str "
                        "(encode the text: stdin=text.encode())")
    if stdin is not None and not isinstance(stdin, (bytes, bytearray, memoryview)):
        if isinstance(stdin, io.TextIOBase):
            raise TypeError("stdin must be a binary stream, not a text stream "
                            "(open the file with 'rb', or pass sys.stdin.buffer)")
        if not callable(getattr(stdin, "read", None)):
            raise TypeError(f"stdin must be bytes or a binary stream with read(), not {type(stdin).__name__}")
    if stdout is not None:
        if isinstance(stdout, io.TextIOBase):
            raise TypeError("stdout must be a binary stream, not a text stream "
                            "(open the file with 'wb', or pass sys.stdout.buffer)")
        if not callable(getattr(stdout, "write", None)):
            raise TypeError(f"stdout must be None or a binary stream with write(), not {type(stdout).__name__}")
    if ctl is not None and not callable(ctl):
        raise TypeError(f"ctl must be None or a callable, not {type(ctl).__name__}")


class HostIO:
    """The instance's input, output, log sink and control handler.

    * ``stdin``: bytes (in memory) or a binary stream; default empty input.
    * ``stdout``: None captures into :attr:`out` (returned as ``Result.stdout``);
      a binary stream receives the bytes as they are produced.
    * ``log``: DEFAULT writes ``[topic] msg\\n`` to stderr; None only records;
      a callable ``f(topic, msg)`` or a (binary or text) stream receives records.
      Records are always kept in :attr:`log_records` as well.
    * ``ctl``: a callable taking the request bytes and returning response bytes or
      a negative int error; None means CTL returns -7. An int outside
      ``-2**63 ..= -1`` or a result that is neither bytes nor an int gives -1.
    * ``max_output_bytes``: what a run may keep of captured output plus log
      records (topic and message bytes and :data:`~zjit.policy.LOG_RECORD_BYTES`
      each) together; :attr:`room` is what is left of it in the
      current run (:meth:`begin_run` resets it). Output to a stream is not counted.

    Handlers may raise: the engine turns that into a HOST trap and chains the
    exception. These methods run *after* the engine checked the spans. Arguments
    of the wrong kind (``stdin="text"``, a text stream, a ``ctl`` that is not
    callable) raise TypeError here, when the instance is made.
    """

    def __init__(
        self,
        stdin: bytes | BinaryIO | None = None,
        stdout: BinaryIO | None = None,
        log: LogSink | None | object = DEFAULT,
        ctl: CtlHandler | None = None,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    ) -> None:
        _check_streams(stdin, stdout, ctl)
        self.in_bytes: bytes | None
        self.in_stream: BinaryIO | None
        if stdin is None or isinstance(stdin, (bytes, bytearray, memoryview)):
            self.in_bytes = bytes(stdin or b"")
            self.in_stream = None
        else:
            self.in_bytes = None
            self.in_stream = stdin
        self.in_pos = 0
        self.out_stream = stdout
        self.out = bytearray()
        self.log_sink = log
        self.log_records: list[tuple[bytes, bytes]] = []
        self.ctl_handler = ctl
        self.limit = max_output_bytes
        self.room = max_output_bytes
    @property
    def input_in_memory(self) -> bool:
        """True when input is a byte string (engines may read it natively)."""
        return self.in_bytes is not None

    @property
    def output_in_memory(self) -> bool:
        """True when output is captured (engines may append natively)."""
        return self.out_stream is None

    def read(self, cap: int) -> bytes:
        """Up to ``cap`` bytes of input (``b""`` at end of input)."""
        if cap <= 0:
            return b""
        if self.in_bytes is not None:
            data = self.in_bytes[self.in_pos : self.in_pos + cap]
            self.in_pos += len(data)
            return data
        assert self.in_stream is not None
        reader = getattr(self.in_stream, "read1", None) or self.in_stream.read
        data = reader(cap)
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("stdin stream must be binary")
        return bytes(data[:cap])

    def begin_run(self) -> None:
        """A run starts: no captured output, no log records, the whole budget."""
        self.out.clear()
        self.log_records.clear()
        self.room = self.limit

    def charge(self, n: int) -> None:
        """Take ``n`` bytes of the run's output budget, or raise OutputLimitError
        (taking nothing) when fewer are left."""
        if n > self.room:
            raise OutputLimitError(self.limit)
        self.room -= n

    def write(self, data: bytes | bytearray | memoryview, *, charged: bool = False) -> None:
        """Append guest output: captured (charged to the budget first unless the
        caller has ``charged`` it already) or written through to the stream."""
        if not data:
            return
        if self.out_stream is None:
            if not charged:
                self.charge(len(data))
            self.out += data
        else:
            self.out_stream.write(bytes(data))
            self.out_stream.flush()

    def log(self, topic: bytes | bytearray | memoryview, msg: bytes | bytearray | memoryview) -> None:
        """Record a LOG (charged to the output budget first) and send it to the sink."""
        self.charge(len(topic) + len(msg) + LOG_RECORD_BYTES)
        topic, msg = bytes(topic), bytes(msg)
        self.log_records.append((topic, msg))
        sink = self.log_sink
        if sink is None:
            return
        if sink is DEFAULT:
            sys.stderr.write(f"[{topic.decode('utf-8', 'replace')}] {msg.decode('utf-8', 'replace')}\n")
            return
        if callable(sink):
            sink(topic, msg)
            return
        line = b"[" + topic + b"] " + msg + b"\n"
        write = getattr(sink, "write")  # noqa: B009 - sink is a binary or text stream
        try:
            write(line)
        except TypeError:
            write(line.decode("utf-8", "replace"))

    def ctl(self, request: bytes, cap: int) -> tuple[int, bytes]:
        """Run the control handler: (value for HL, bytes to write at the response)."""
        if self.ctl_handler is None:
            return CTL_NO_HANDLER, b""
        resp = self.ctl_handler(request)
        if isinstance(resp, int):  # a bool too: True and False are not negative
            return (resp if _CTL_ERROR_MIN <= resp < 0 else CTL_RESP_TOO_LONG), b""
        if not isinstance(resp, (bytes, bytearray, memoryview)):
            return CTL_RESP_TOO_LONG, b""  # neither bytes nor an int (interfaces.md)
        data = bytes(resp)
        if len(data) > cap:
            return CTL_RESP_TOO_LONG, b""
        return len(data), data

    def take_output(self) -> bytes:
        """Captured output so far (and clear the buffer)."""
        data = bytes(self.out)
        self.out.clear()
        return data


@dataclass
class Machine:
    """Mutable state of one instance, shared by whichever engine runs it.

    ``memory`` is the guest memory (exactly ``mem_size`` bytes, a bytearray so
    native code can address it). ``readonly`` holds sorted, non-overlapping
    ``(start, end)`` ranges where guest writes trap WRITE_PROTECT. ``heap_top`` is
    the bump allocator's top. ``fuel`` is the fuel left (None = unmetered) and is
    updated by the engine. ``deadline`` (``time.monotonic()`` seconds) and
    :meth:`interrupt` drive TIMEOUT.
    """

    memory: bytearray
    readonly: tuple[tuple[int, int], ...]
    heap_top: int
    host: HostIO
    max_call_depth: int
    fuel: int | None = None
    deadline: float | None = None
    interrupted: bool = False
    _interrupt_hooks: list[Callable[[], None]] = field(default_factory=list)

    @property
    def mem_size(self) -> int:
        """Guest memory size in bytes."""
        return len(self.memory)

    def interrupt(self) -> None:
        """Ask the running guest to stop with TIMEOUT (callable from any thread)."""
        self.interrupted = True
        for hook in list(self._interrupt_hooks):
            hook()

    def add_interrupt_hook(self, hook: Callable[[], None]) -> None:
        """Engines with their own flag (native code) register a setter here."""
        self._interrupt_hooks.append(hook)

    def remove_interrupt_hook(self, hook: Callable[[], None]) -> None:
        """Undo :meth:`add_interrupt_hook`."""
        if hook in self._interrupt_hooks:
            self._interrupt_hooks.remove(hook)

    def timed_out(self) -> bool:
        """True when interrupted or past the deadline."""
        return self.interrupted or (self.deadline is not None and time.monotonic() >= self.deadline)


@dataclass(frozen=True, slots=True)
class Specialisation:
    """What generated code may hard-wire about the machine it runs on, all fixed
    for an instance: metering on or off, the guest memory size, the read-only
    ranges and the call-depth limit.

    Every engine keeps its code per specialisation (:meth:`of` a machine) and
    compiles in what it uses of it: the interpreter all four, the compiling
    engines all but the call-depth limit (they read it from the run context).
    """

    metered: bool
    mem_size: int
    readonly: tuple[tuple[int, int], ...]
    max_call_depth: int

    @classmethod
    def of(cls, machine: Machine) -> Specialisation:
        """The specialisation ``machine`` needs."""
        return cls(machine.fuel is not None, len(machine.memory), tuple(machine.readonly), machine.max_call_depth)


@dataclass
class Outcome:
    """What an engine reports for one run; the runtime turns it into a Result.

    ``registers`` are the five registers at the end (at a trap: before the trapping
    instruction). For traps, ``trap``/``pc`` and, for OOB/WRITE_PROTECT,
    ``address``/``length`` of the failing access or span. ``cause`` is a host
    handler's exception (HOST traps). ``backtrace`` holds the pcs of the active
    CALLs at a trap, innermost first, cut by :func:`keep_frames` (``omitted``
    counts the frames left out); None when the engine could not record them.
    """

    registers: list[int]
    trap: TrapKind | None = None
    pc: int | None = None
    address: int | None = None
    length: int | None = None
    cause: BaseException | None = None
    backtrace: tuple[int, ...] | None = None
    omitted: int = 0

    def __post_init__(self) -> None:
        assert len(self.registers) == NUM_REGS


def keep_frames(outer_first: list[Any]) -> tuple[tuple[Any, ...], int]:
    """The kept frames, innermost first, and the number omitted, of a call
    stack given outermost first: all of it up to ``2 * BACKTRACE_KEEP`` frames, else
    the ``BACKTRACE_KEEP`` innermost then the ``BACKTRACE_KEEP`` outermost."""
    n = len(outer_first)
    if n <= 2 * BACKTRACE_KEEP:
        return tuple(reversed(outer_first)), 0
    inner = outer_first[n - BACKTRACE_KEEP:]
    outer = outer_first[:BACKTRACE_KEEP]
    return tuple(reversed(inner)) + tuple(reversed(outer)), n - 2 * BACKTRACE_KEEP


class Executable(Protocol):
    """Code prepared for one verified program under one policy."""

    def execute(self, machine: Machine, entry_pc: int, registers: list[int]) -> Outcome:
        """Run from ``entry_pc`` with the given registers (CMP = (0,0), empty call
        stack) until RET on an empty stack or a trap; update ``machine.fuel``."""
        ...


class Backend(Protocol):
    """An engine: turns a VerifiedProgram into an Executable."""

    name: str

    def prepare(self, program: VerifiedProgramLike, policy: PolicyLike) -> Executable:
        """Compile or pre-decode ``program`` for ``policy``."""
        ...


# Forward-declared names kept loose to avoid import cycles in this protocol module.
VerifiedProgramLike = object
PolicyLike = object
