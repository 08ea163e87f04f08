"""SIGTERM and Ctrl-C as a request to stop, handled so that no signal can hang the worker.

The handler only records the signal number. Anything more inside a signal handler can deadlock:
Python runs handlers in the main thread between two bytecodes, so a handler that takes a lock
(``Event.set()``, logging) while the main thread holds that same lock (inside ``Event.wait``,
inside a log call) waits for itself forever. Sleeps wake up through the signal module's wakeup
fd, which the interpreter writes from its C-level handler. Whoever checks ``requested()`` first
passes the stop on to the worker's other ranks, from ordinary code.

A signal that arrives before the handler is installed keeps its default action (SIGINT raises
KeyboardInterrupt, SIGTERM ends the process), and a process started with SIGINT ignored (as
`fvlab demo` starts its children) keeps ignoring it and stops on SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Iterator, Sequence
from types import FrameType

EXIT_POLL_SECONDS = 0.2  # how often to look for ranks' exits where pidfds are missing (not Linux)


class StopSignal:
    """Whether SIGTERM or SIGINT has arrived, and a sleep that such a signal cuts short."""

    def __init__(self, forward_to: Sequence[int] = ()) -> None:
        self.received: int | None = None
        self._forward_to = tuple(forward_to)
        self._forwarded = False
        self._read, self._write = os.pipe()
        for fd in (self._read, self._write):
            os.set_blocking(fd, False)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signum  # nothing else: see the module docstring

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopSignal]:
        """Handle SIGTERM (and SIGINT unless ignored) inside the block; main thread only."""
        signals = [signal.SIGTERM]
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            signals.append(signal.SIGINT)
        previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        previous = {sig: signal.signal(sig, self._handle) for sig in signals}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous_fd)
            os.close(self._read)
            os.close(self._write)

    def requested(self) -> bool:
        """True once a stop signal has arrived; the first call to see it tells the other ranks."""
        if self.received is None:
            return False
        if not self._forwarded:
            self._forwarded = True
            for pid in self._forward_to:  # a service manager may have signalled only this rank
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        return True

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, less if a stop signal arrives; returns `requested()`."""
        if not self.requested():
            select.select([self._read], [], [], max(0.0, seconds))
            with contextlib.suppress(BlockingIOError):
                while os.read(self._read, 512):
                    pass
        return self.requested()


def wait_for_exit(pids: Sequence[int]) -> None:
    """Block until every process in `pids` has ended (exited, even if not yet reaped)."""
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        except (AttributeError, OSError):  # no pidfds here: poll until the launcher reaps it
            while _alive(pid):
                time.sleep(EXIT_POLL_SECONDS)
            continue
        try:
            select.select([fd], [], [])
        finally:
            os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
