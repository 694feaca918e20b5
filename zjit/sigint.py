"""Ctrl-C during a run: the same behaviour on every engine (docs/api.md).

While a run executes in the main thread and SIGINT still has Python's default
handler, :class:`SigintGuard` replaces that handler for the duration of the run:

* the first Ctrl-C asks the guest to stop (:meth:`~zjit.machine.Machine.interrupt`):
  it traps TIMEOUT at its next interrupt check, and ``run()`` returns that
  Result with ``trap.cause`` a :class:`KeyboardInterrupt`;
* a second Ctrl-C during the same run raises :class:`KeyboardInterrupt` (once
  the guest has stopped, on the compiling engines, which never leave it running);
* a Ctrl-C that arrives when the guest is already ending is not lost: if the run
  did not trap TIMEOUT, ``run()`` raises :class:`KeyboardInterrupt` after it.

Engines need nothing for this but to notice the interrupt (the interpreter polls
it, the compiling engines keep the calling thread in Python while guest code
runs elsewhere). A handler the embedder installed is left alone, and runs in
other threads are not concerned (Python delivers signals to the main thread).
"""

from __future__ import annotations

import _signal

from .machine import Machine


class SigintGuard:
    """The run-scoped SIGINT handler of one run (see the module docstring)."""

    __slots__ = ("machine", "count", "previous")

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.count = 0
        self.previous: object = None

    @classmethod
    def install(cls, machine: Machine) -> SigintGuard | None:
        """A guard for a run of ``machine``, or None when this is not the main
        thread or SIGINT has a handler other than Python's default."""
        try:
            if _signal.getsignal(_signal.SIGINT) is not _signal.default_int_handler:
                return None
            guard = cls(machine)
            guard.previous = _signal.signal(_signal.SIGINT, guard.on_sigint)
        except ValueError:  # not the main thread of the main interpreter
            return None
        return guard

    def on_sigint(self, signum: int, frame: object) -> None:
        """Interrupt the guest; the second time, raise KeyboardInterrupt (the engine
        waiting for the guest interrupts it too, and raises once it stopped)."""
        self.count += 1
        if self.count > 1:
            raise KeyboardInterrupt
        self.machine.interrupt()

    def restore(self) -> None:
        """Put the previous handler back."""
        _signal.signal(_signal.SIGINT, self.previous)

    def cause(self, timed_out: bool) -> KeyboardInterrupt | None:
        """After the run: the cause for its TIMEOUT trap (``timed_out``) when a
        Ctrl-C stopped it; raises KeyboardInterrupt when a Ctrl-C came but the run
        ended otherwise."""
        if not self.count:
            return None
        if not timed_out:
            self.machine.interrupted = False  # our request, not delivered: drop it
            raise KeyboardInterrupt
        return KeyboardInterrupt("Ctrl-C")
