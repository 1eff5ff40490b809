"""Run a few child processes as one: prefixed output, and they stop together.

Used by ``manage.py up`` for the web server and the task worker. Each child runs in a
process group of its own, so a terminal's Ctrl-C reaches only the supervisor, which
then stops every child (and their own children, e.g. qcluster's workers) with SIGTERM,
waits a grace period and kills what is left. If one child exits on its own, the others
are stopped the same way and the supervisor reports failure. On Linux the children also
receive SIGTERM if the supervisor itself dies (PR_SET_PDEATHSIG), so nothing is orphaned.

No Django imports: the tests drive it with dummy children.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Child:
    name: str
    argv: Sequence[str]
    cwd: str | None = None
    env: Mapping[str, str] | None = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class Supervisor:
    def __init__(self, children: Sequence[Child], *, out: TextIO | None = None, grace: float = 10.0, poll: float = 0.1):
        self.children = list(children)
        self.out = out or sys.stdout
        self.grace, self.poll = grace, poll
        self.procs: list[tuple[Child, subprocess.Popen]] = []
        self.signals: list[int] = []
        self._lock = threading.Lock()
        self._pumps: list[threading.Thread] = []
        self._width = max((len(c.name) for c in self.children), default=0)

    # --- public ----------------------------------------------------------------------
    def run(self) -> int:
        """Start the children and wait: 0 after SIGINT/SIGTERM, non-zero when a child died."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._start()
            return self._watch()
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        """SIGTERM every child, wait up to ``grace`` for their process groups, then SIGKILL.

        Only the child itself gets SIGTERM: qcluster's sentinel stops its own workers, and
        signalling them behind its back makes it restart them instead.
        """
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        orphans_warned: set[int] = set()
        while time.monotonic() < deadline and len(self.signals) < 2:
            alive = [proc for _, proc in self.procs if _group_alive(proc)]
            if not alive:
                break
            for proc in alive:  # the child is gone but left processes behind: tell them too
                if proc.poll() is not None and proc.pid not in orphans_warned:
                    orphans_warned.add(proc.pid)
                    _signal_group(proc.pid, signal.SIGTERM)
            time.sleep(self.poll)
        for child, proc in self.procs:
            if _group_alive(proc):
                self.say(f"{child.name} did not stop in time; killing it")
                _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        for pump in self._pumps:
            pump.join(timeout=2)

    def say(self, text: str) -> None:
        with self._lock:
            self.out.write(f"{'chorus':>{self._width}} | {text}\n")
            self.out.flush()

    # --- internals -------------------------------------------------------------------
    def _on_signal(self, signum: int, frame) -> None:
        self.signals.append(signum)

    def _start(self) -> None:
        # All children first, the output threads after: preexec_fn is unsafe once threads run.
        for child in self.children:
            env = {**os.environ, **(child.env or {}), "PYTHONUNBUFFERED": "1"}
            proc = subprocess.Popen(
                list(child.argv), cwd=child.cwd, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
            self.procs.append((child, proc))
        for child, proc in self.procs:
            pump = threading.Thread(target=self._pump, args=(child, proc), daemon=True)
            pump.start()
            self._pumps.append(pump)

    def _pump(self, child: Child, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            with self._lock:
                self.out.write(f"{child.name:>{self._width}} | {line}\n")
                self.out.flush()

    def _watch(self) -> int:
        while True:
            if self.signals:
                self.say(f"received {signal.Signals(self.signals[0]).name}; stopping")
                return 0
            for child, proc in self.procs:
                code = proc.poll()
                if code is not None:
                    self.say(f"{child.name} exited with code {code}; stopping the others")
                    return code or 1
            time.sleep(self.poll)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the child leads its own group: pgid == pid
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(proc: subprocess.Popen) -> bool:
    """True while the child or anything left in its process group still runs."""
    if proc.poll() is None:
        return True
    try:
        os.killpg(proc.pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def run(children: Sequence[Child], *, out: TextIO | None = None, grace: float = 10.0) -> int:
    return Supervisor(children, out=out, grace=grace).run()
