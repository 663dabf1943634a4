"""Runs in: the grader. The grader's handle on one sandbox process, and on its zygote.

``Sandbox.start`` launches the untrusted process, sends it the notebook's
cells and watches each cell with a timeout; a cell that hangs or kills the
process is recorded and skipped, and the notebook is executed again without
it. ``Sandbox.request`` sends one request and waits for its reply with a
deadline. ``Sandbox.close`` kills every process the submission started.
"""
from __future__ import annotations

import atexit
import json
import math
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

from autograder.harness import wire
from autograder.harness.accounts import SandboxUser, kill_everything
from autograder.harness.protocol import Event, SandboxLimits


@dataclass
class CellIssue:
    """A notebook cell that failed while the notebook was executed.

    Attributes:
        index: position of the cell among the executed cells (0-based).
        kind: "error" (raised), "timeout" (ran past the cell limit) or
            "crash" (the process died, e.g. ``os._exit`` or out of memory).
        message: a one-line description for the student.
    """

    index: int
    kind: str
    message: str


class StudentError(Exception):
    """Student code raised; ``info`` holds type, message and its traceback."""

    def __init__(self, info: dict):
        self.info = info if isinstance(info, dict) else {}
        super().__init__(f"{self.info.get('type', 'Error')}: {self.info.get('message', '')}")


class SandboxTimeout(Exception):
    """The sandbox did not answer within the deadline (it has been killed)."""


class SandboxDied(Exception):
    """The sandbox process ended while we were waiting for it."""


class GraderFailure(Exception):
    """The grading machinery failed before any student code ran (the zygote
    did not start, the sandbox could not be set up). Not the student's
    fault: no grade may be recorded; grading again is the remedy."""


class Zygote:
    """A pre-imported process that forks sandboxes (see ``zygote``).

    One per grader slot: a slot grades one submission at a time, so every
    process below its zygote belongs to the submission being graded.
    """

    _by_key: dict = {}
    _lock = threading.Lock()

    def __init__(self, preload: tuple[str, ...], startup_timeout: float, fork: bool = False):
        """Start the zygote; it imports in the background until ``wait_ready``.

        ``fork=True`` forks it from this process instead of starting a new
        interpreter: instant when this process has imported the preload
        modules, and allowed only while this process holds nothing a
        student may see (a grading worker before its first submission:
        see ``workers``)."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        if fork:
            env = _sandbox_env()
            pid = os.fork()
            if pid == 0:
                from autograder.harness import zygote

                parent.close()
                zygote.serve_forked(child.fileno(), env)
            self.proc = _ForkedProcess(pid)
        else:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "autograder.harness.zygote", str(child.fileno())],
                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, env=_sandbox_env(), cwd="/", start_new_session=True,
            )
        child.close()
        self.sock = parent
        self.startup_timeout = startup_timeout
        self.lines = self.sock.makefile("rb")
        self.sock.sendall(json.dumps({"preload": list(preload)}).encode())
        self.ready = False
        self.spawn_lock = threading.Lock()

    def wait_ready(self) -> None:
        if self.ready:
            return
        self.sock.settimeout(self.startup_timeout)
        try:
            line = self.lines.readline()
        except OSError:
            line = b""
        if line != b"ready\n":
            self.proc.kill()
            raise GraderFailure("the sandbox zygote did not start")
        self.sock.settimeout(30)
        self.ready = True

    @classmethod
    def for_slot(cls, slot: int, preload: tuple[str, ...], startup_timeout: float, fork: bool = False) -> "Zygote":
        """The slot's zygote, started if needed (not waited for: callers may
        do their own imports meanwhile; ``spawn`` waits). ``fork``: see
        ``__init__``; a zygote that has to be replaced later is always
        started as a new interpreter."""
        key = (slot, tuple(preload))
        with cls._lock:
            if not cls._by_key:  # the first zygote of this process: kill them all at exit
                _register_shutdown()
            z = cls._by_key.get(key)
            if z is None or z.proc.poll() is not None:
                z = cls._by_key[key] = cls(tuple(preload), startup_timeout, fork=fork and z is None)
            return z

    def spawn(self, fds: list[int]) -> int:
        with self.spawn_lock:
            self.wait_ready()
            socket.send_fds(self.sock, [b"spawn"], fds)
            line = self.lines.readline()
        if not line.strip().isdigit():
            raise GraderFailure("the sandbox zygote did not fork")
        return int(line)

    @classmethod
    def shutdown_all(cls) -> None:
        with cls._lock:
            for z in cls._by_key.values():
                try:
                    z.sock.close()
                    kill_everything(z.proc.pid, None)  # its sandboxes first
                    z.proc.kill()
                except OSError:
                    pass
            cls._by_key.clear()



_shutdown_registered = False


def _register_shutdown() -> None:
    """Kill every zygote (and its sandboxes) when this process exits.
    Registered with the first zygote, not at import: importing the handle
    has no side effect."""
    global _shutdown_registered
    if not _shutdown_registered:
        _shutdown_registered = True
        atexit.register(Zygote.shutdown_all)


class _ForkedProcess:
    """What ``Zygote`` uses of ``subprocess.Popen``, for a forked zygote."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass
class Sandbox:
    """One untrusted process executing one notebook."""

    limits: SandboxLimits
    user: SandboxUser | None = None
    slot: int = 0
    cells: list[str] = field(default_factory=list)
    skip: set[int] = field(default_factory=set)
    issues: list[CellIssue] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    output: bytearray = field(default_factory=bytearray)

    @property
    def running(self) -> bool:
        return self.zygote is not None

    def __post_init__(self):
        self.peak_memory_mb = 0.0
        self.student_seconds = 0.0  # in the student's code: cells and calls (see _count_student_time)
        self.zygote = None
        self.pid = None
        self.layers: list[ProtectionLayer] = []  # as the sandbox reported them at start-up
        self._replies: queue.Queue = queue.Queue()

    # -- life cycle ------------------------------------------------------------
    def start(self, deadline: float) -> None:
        """Execute the notebook; on a hang or crash skip that cell and retry."""
        while True:
            bad = self._launch(deadline)
            if bad is None:
                return
            self.skip.add(bad.index)
            self.issues.append(bad)
            self.close()
            if time.monotonic() >= deadline:  # out of time: left closed, graded as such (not a grader failure)
                return

    def restart(self, deadline: float) -> None:
        """A fresh process with the same cells (after a question killed it).
        Cell issues were already reported the first time, so they are not
        repeated."""
        self.close()
        known = list(self.issues)
        self.start(deadline)
        self.issues = known + [i for i in self.issues if i not in known]

    def _launch(self, deadline: float) -> CellIssue | None:
        self.workdir = tempfile.mkdtemp(prefix="sodl-sandbox-")
        if self.user is not None:
            os.chown(self.workdir, self.user.uid, self.user.gid)
        os.chmod(self.workdir, 0o700)
        zygote = Zygote.for_slot(self.slot, self.limits.preload, self.limits.startup_timeout)
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        out_r, out_w = os.pipe()
        try:
            self.pid = zygote.spawn([req_r, resp_w, out_w])
        finally:
            for fd in (req_r, resp_w, out_w):
                os.close(fd)
        self.zygote = zygote
        self.req_fd = req_w  # resp_r is the reader thread's (see _read_replies)
        self._replies = queue.Queue()
        threading.Thread(target=self._read_replies, daemon=True,
                         args=(resp_r, self._replies, wire.reply_budget(self.limits.memory_mb))).start()
        threading.Thread(target=self._drain_output, args=(os.fdopen(out_r, "rb", buffering=0),), daemon=True).start()

        cells = [{"index": i, "source": src} for i, src in enumerate(self.cells) if i not in self.skip]
        lim = self.limits
        # The cells' claimed seconds are capped, in all, by the wall time since
        # the notebook was sent: a cap per cell, timed where this thread
        # happens to read the events, undercounts on a loaded machine.
        started, claimed = time.monotonic(), 0.0
        wire.write_message(self.req_fd, {
            "cells": cells, "workdir": self.workdir,
            "user": None if self.user is None else {"uid": self.user.uid, "gid": self.user.gid},
            "limits": lim.to_dict(),
        })
        # Student code runs in the process that writes these events and can
        # write to the same pipe: an event is believed only where the protocol
        # puts it (STARTED first, then CELL_START and CELL_DONE of each cell
        # sent, in order, then READY), and each wait has a fixed end that no
        # event moves but the next one owed (issue: an event sent every 50 ms
        # kept a cell, and the grader, waiting forever; a forged index or
        # FATAL made a grader failure of a student's notebook).
        owed = [c["index"] for c in cells]  # the cells whose CELL_START is still to come, in order
        ready = False  # STARTED came: the sandbox is set up, student code may run from here on
        current = last = None  # the cell running, and the last one that started
        until = time.monotonic() + min(lim.startup_timeout, max(0.1, deadline - time.monotonic()))
        while True:
            try:
                msg = self._next(until - time.monotonic())
            except (SandboxTimeout, SandboxDied) as e:
                blamed = current if current is not None else last
                if blamed is None:  # no student code has run: the machinery failed
                    raise GraderFailure("the sandbox process did not start") from e
                self.student_seconds += min(claimed, time.monotonic() - started)
                kind = "timeout" if isinstance(e, SandboxTimeout) else "crash"
                text = (f"cell {blamed + 1} ran longer than {lim.cell_timeout:g} s and was stopped"
                        if kind == "timeout" else
                        f"cell {blamed + 1} ended the Python process (os._exit, a signal, or out of memory)")
                return CellIssue(blamed, kind, text)
            event, index = msg.get("event"), msg.get("index")
            if not ready:
                if event == Event.FATAL:
                    raise GraderFailure(f"sandbox set-up failed: {msg.get('error')}")
                if event != Event.STARTED:
                    raise GraderFailure("the sandbox process did not start (it spoke out of turn)")
                ready = True
                self.layers = protection_layers(msg.get("layers"))
                _log_missing(self.layers)
            elif event == Event.CELL_START and current is None and owed and type(index) is int and index == owed[0]:
                current = last = owed.pop(0)
            elif event == Event.CELL_DONE and current is not None and type(index) is int and index == current:
                claimed += _claimed_seconds(msg)
                err = msg.get("error")
                if err:
                    info = StudentError(err).info
                    self.issues.append(CellIssue(current, "error", f"cell {current + 1} raised "
                                                 f"{wire.clean_text(info.get('type'), 100)}: "
                                                 f"{wire.clean_text(info.get('message'), 300)}"))
                current = None
            elif event == Event.READY and current is None and not owed:
                self.student_seconds += min(claimed, time.monotonic() - started)
                self.peak_memory_mb = max(self.peak_memory_mb, _peak_rss_mb(self.pid))
                names = msg.get("names")
                self.names = {str(k): str(v) for k, v in names.items()} if isinstance(names, dict) else {}
                return None
            else:  # out of turn: student code wrote to the grader's pipe
                blamed = current if current is not None else last
                if blamed is None:
                    raise GraderFailure("the sandbox process did not start (it spoke out of turn)")
                self.student_seconds += min(claimed, time.monotonic() - started)
                return CellIssue(blamed, "crash", f"cell {blamed + 1} wrote to the grader's channel and was stopped")
            # the next event owed gets the cell limit, from now, within the submission's
            until = min(time.monotonic() + lim.cell_timeout, max(deadline, time.monotonic() + 0.1))

    def close(self) -> None:
        """Kill every process of this submission and remove its scratch folder."""
        if self.zygote is None:
            return
        try:  # the reply channel is its reader thread's to close (see _read_replies)
            os.close(self.req_fd)
        except OSError:
            pass
        self.peak_memory_mb = max(self.peak_memory_mb, _peak_rss_mb(self.pid))
        kill_everything(self.zygote.proc.pid, self.user)
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.zygote = None

    # -- requests ----------------------------------------------------------------
    def request(self, msg: dict, blobs: list[bytes], timeout: float):
        """Send one request; return the decoded reply value.

        Raises StudentError (the student's code raised), SandboxTimeout or
        SandboxDied (the process is dead or killed; call ``restart``).
        """
        if self.zygote is None:
            raise SandboxDied("the sandbox is not running")
        sent = time.monotonic()
        try:
            wire.write_message(self.req_fd, msg, blobs)
        except OSError as e:
            self.close()
            raise SandboxDied("the sandbox closed its channel") from e
        try:
            reply = self._next(timeout)
        except (SandboxTimeout, SandboxDied):
            self.close()  # a dead or hung sandbox is restarted by the next question
            raise
        self._count_student_time(reply, time.monotonic() - sent)
        if isinstance(reply.get("_dropped"), wire.MessageTooLarge):  # no JSON value is an exception
            raise reply["_dropped"]
        if "error" in reply:
            raise StudentError(reply["error"])
        return reply

    def _count_student_time(self, msg: dict, wall: float) -> None:
        """Add the seconds the sandbox says a call spent in student code. The sandbox is untrusted, so the claim is capped by the wall
        time measured here; it is for accounting (how much of grading is
        the student's own computation) and never affects a grade."""
        self.student_seconds += min(_claimed_seconds(msg), wall)

    def _next(self, timeout: float) -> dict:
        try:
            item = self._replies.get(timeout=max(0.0, timeout))
        except queue.Empty:
            raise SandboxTimeout() from None
        if isinstance(item, BaseException):
            raise SandboxDied(str(item))
        return item

    @staticmethod
    def _read_replies(fd: int, out: queue.Queue, max_bytes: int = wire.MAX_FRAME_BYTES) -> None:
        """Put each reply of the sandbox on ``out``, then the error that
        ended the channel (EOF when the sandbox is killed).

        This thread owns ``fd`` and is the only one to close it, when it
        ends. ``close`` once closed it from the grader's thread: a reader
        not yet back in ``read`` then read the next sandbox's channel, which
        had been given the same descriptor number, and took the first bytes
        of its first message ("the sandbox process did not start: message
        header too large" under load, or a diagnosis that silently found
        nothing)."""
        try:
            while True:
                try:
                    msg, blobs = wire.read_message(fd, max_bytes)
                except wire.MessageTooLarge as e:  # dropped unread: the question fails, the channel goes on
                    msg, blobs = {"_dropped": e}, []
                msg["_blobs"] = blobs
                out.put(msg)
        except (EOFError, OSError, wire.WireError) as e:
            out.put(e if isinstance(e, Exception) else EOFError())
        finally:
            os.close(fd)

    def _drain_output(self, stream) -> None:
        cap = self.limits.max_output_kb * 1024
        try:
            while True:
                chunk = stream.read(65536)
                if not chunk:
                    return
                room = cap - len(self.output)
                if room > 0:
                    self.output += chunk[:room]
        except (OSError, ValueError):
            return

    def student_output(self) -> str:
        text = bytes(self.output).decode("utf-8", "replace")
        if len(self.output) >= self.limits.max_output_kb * 1024:
            text += "\n[output truncated]"
        return text


def _claimed_seconds(msg: dict) -> float:
    """The seconds in student code a sandbox message claims, as a finite
    non-negative float (0 for anything else)."""
    claimed = msg.get("seconds")
    if type(claimed) in (int, float) and math.isfinite(claimed):
        return max(float(claimed), 0.0)
    return 0.0


def _peak_rss_mb(pid) -> float:
    """Peak resident memory of a live process (VmHWM), in MB; 0 if unknown."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, TypeError):
        pass
    return 0.0


@dataclass(frozen=True)
class ProtectionLayer:
    """One protection of a sandbox as it reported it at start-up (before
    any student code ran), for the log and ``grading.json``.

    Attributes:
        name: the layer (``landlock``, ``seccomp``, ``mount-namespace-chroot``...).
        active: whether it is in force.
        detail: what it does, or why it is missing.
    """

    name: str
    active: bool
    detail: str


def protection_layers(raw) -> list[ProtectionLayer]:
    """The ``layers`` of a STARTED event, as records: only well-formed
    entries, strings clipped (the event comes from the sandbox process)."""
    out = []
    for item in raw[:32] if type(raw) is list else []:
        if type(item) is dict and type(item.get("name")) is str and type(item.get("active")) is bool:
            detail = item.get("detail")
            out.append(ProtectionLayer(item["name"][:64], item["active"], detail[:300] if type(detail) is str else ""))
    return out


_warned: set[str] = set()


def _log_missing(layers: list[ProtectionLayer]) -> None:
    """Say once per process, on the grader's stderr, which protection is
    missing (the full list of layers goes to each ``grading.json``)."""
    for layer in layers:
        line = f"{layer.name}: {layer.detail}"
        if not layer.active and line not in _warned:
            _warned.add(line)
            print(f"sodl: warning: sandbox protection missing: {line}", file=sys.stderr)


def _sandbox_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "PYTHONPATH")}
    env.update({"MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1",
                "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"})
    return env
