"""The open-loop load generator as its own process (run as a script: stdlib and NumPy only).

    python sender.py ARRIVALS.npy LATENESS_OUT.npy SPIN_US ABORT_LAG_MS

Loads the arrival times (seconds from the run's start), writes ``R`` to stdout when ready,
reads the run's start (a ``time.perf_counter`` value, one line on stdin), then at every
scheduled arrival writes ``(first, end)`` (two little-endian int32: the requests ``first ..
end - 1`` arrive now) to stdout, whether or not earlier requests finished. It sleeps until
just before each arrival, aiming early by a running estimate of ``time.sleep``'s overshoot,
and spins the last ``SPIN_US`` microseconds. ``time.perf_counter`` is ``CLOCK_MONOTONIC`` on
Linux, one clock for every process, so the server's timestamps and these agree.

It saves its own lateness per request (seconds; NaN for requests never sent) to
``LATENESS_OUT.npy`` and exits 0, or 3 once a request was ``ABORT_LAG_MS`` late (it stops
there: the machine cannot drive this trace). Being a separate process, it neither holds the
server's GIL while it spins nor waits for it, so its timing is its own.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

BEHIND_EXIT = 3
READY = b"R"
RECORD = struct.Struct("<ii")


class Pacer:
    """Waits until given moments of ``clock``: sleeps until just before (aiming early by a
    running estimate of how late ``time.sleep`` wakes up), then spins the rest."""

    def __init__(self, clock: Callable[[], float], spin_s: float) -> None:
        self.clock = clock
        self.spin_s = spin_s
        self.overshoot = 60e-6

    def wait_until(self, t: float) -> None:
        clock = self.clock
        wait = t - clock()
        if wait > self.spin_s + self.overshoot:
            asked = wait - self.overshoot
            before = clock()
            time.sleep(asked)
            late = min(max(clock() - before - asked, 0.0), 2e-3)
            self.overshoot = 0.9 * self.overshoot + 0.1 * late
        while clock() < t:
            pass


def group_end(at: Sequence[float], i: int) -> int:
    """One past the last request arriving at the same moment as request ``i``."""
    j = i + 1
    while j < len(at) and at[j] == at[i]:
        j += 1
    return j


def send(at: list[float], t0: float, out_fd: int, spin_s: float, abort_s: float) -> np.ndarray:
    """Write every arrival at ``t0 + at[i]``; the lateness of each (NaN if never sent)."""
    clock, n = time.perf_counter, len(at)
    late = np.full(n, np.nan)
    pacer = Pacer(clock, spin_s)
    i = 0
    while i < n:
        t = t0 + at[i]
        pacer.wait_until(t)
        j = group_end(at, i)
        record = RECORD.pack(i, j)
        # Lateness is when the request went out: taken before the write, since the process
        # may be preempted after it, while the server has already received the request.
        lag = clock() - t
        os.write(out_fd, record)
        late[i:j] = lag
        if lag > abort_s:
            break
        i = j
    return late


def prioritise() -> str:
    """Run ahead of the server's threads where the OS allows it: the generator stands for
    clients on other machines, so the server's load must not delay it. Real-time FIFO
    scheduling (it sleeps between arrivals, so it takes little), else the highest nice
    priority, else none; which one it got."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        return "fifo"
    except (AttributeError, OSError):
        pass
    try:
        os.nice(-20)
        return "nice"
    except OSError:
        return "normal"


def main(argv: list[str]) -> int:
    arrivals_path, out_path, spin_us, abort_ms = argv
    at = np.load(arrivals_path).astype(np.float64).tolist()
    prioritise()
    out_fd = sys.stdout.fileno()
    os.write(out_fd, READY)
    t0 = float(sys.stdin.readline())
    late = send(at, t0, out_fd, float(spin_us) / 1e6, float(abort_ms) / 1000.0)
    with contextlib.suppress(AttributeError, OSError):
        # Done: back to normal priority, so saving and exiting take no core from the server.
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    # Written aside, then renamed: the server may kill this process at any moment (a stage
    # failed), and must then find either the whole file or none.
    partial = f"{out_path}.partial.npy"
    np.save(partial, late)
    os.replace(partial, out_path)
    behind = bool(np.nanmax(late, initial=0.0) > float(abort_ms) / 1000.0)
    return BEHIND_EXIT if behind else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
