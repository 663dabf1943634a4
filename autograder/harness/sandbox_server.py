"""Runs in: the sandbox. Executes a student's notebook and serves requests.

A sandbox is forked by the zygote (``zygote._child`` calls
:func:`serve_forked`) with the preload modules already imported. The
grader sends a start message (cells, scratch folder, account, limits:
see ``protocol``); this process enters the jail (``jail``), executes the
cells, then answers requests (call a function, read a variable, use a
handle) until told to stop. Every reply is plain data (see ``wire``); this
process never sees the tests, the expected values or the results file.
"""
from __future__ import annotations

import importlib
import os
import sys
import traceback
import types
from time import perf_counter as _clock  # bound before student code can patch `time`

import numpy as np

from autograder.harness import wire
from autograder.submission import strip_magics
from autograder.harness.protocol import Event, Op, SandboxLimits

MAX_ITER_ITEMS = 100_000


class _StudentExit(Exception):
    """Raised instead of exiting when student code calls ``sys.exit``/``exit``."""


def _otter_stub() -> types.ModuleType:
    """A stand-in for ``otter`` so that ``grader.check(...)`` cells are no-ops."""
    mod = types.ModuleType("otter")

    class Notebook:
        def __init__(self, *args, **kwargs):
            pass

        def __getattr__(self, name):
            return lambda *a, **k: None

    mod.Notebook = Notebook
    return mod


class Server:
    """Executes cells in one namespace and serves requests on two pipes."""

    def __init__(self, req_fd: int, resp_fd: int):
        self.req_fd, self.resp_fd = req_fd, resp_fd
        self.namespace: dict = {"__name__": "__main__", "__builtins__": __builtins__}
        self.handles: dict[int, object] = {}
        self.device = "cpu"  # where tensors sent by the tests are placed
        self.student_started = 0.0  # when the current request's student code began (see serve)
        self.mutated: list[tuple[str, object]] = []  # arguments the last call changed in place

    # -- plumbing -------------------------------------------------------------
    def send(self, msg: dict, blobs=None) -> None:
        wire.write_message(self.resp_fd, msg, blobs)

    def make_handle(self, obj) -> dict:
        hid = len(self.handles) + 1
        self.handles[hid] = obj
        t = type(obj)
        return {"__t__": "handle", "id": hid, "type": f"{t.__module__}.{t.__qualname__}"}

    def resolve_handle(self, h: wire.Handle):
        if h.id not in self.handles:
            raise wire.WireError("unknown handle")
        return self.handles[h.id]

    def reply_value(self, value, seconds: float = 0.0) -> None:
        enc = wire.Encoder(self.make_handle)
        msg = {"ok": enc.encode(value), "seconds": seconds}
        if self.mutated:  # the arguments the call changed in place, as they are now
            msg["mutated"] = {label: enc.encode(arg) for label, arg in self.mutated}
        self.send(msg, enc.blobs)

    def reply_error(self, exc: BaseException, seconds: float = 0.0) -> None:
        self.send({"error": describe_exception(exc), "seconds": seconds})

    # -- notebook execution ----------------------------------------------------
    def run_cells(self, cells: list[dict]) -> None:
        for cell in cells:
            idx = cell["index"]
            self.send({"event": Event.CELL_START, "index": idx})
            error = None
            started = _clock()
            try:
                code = compile(strip_magics(cell["source"]), f"<cell {idx}>", "exec")
                exec(code, self.namespace)
            except BaseException as e:  # noqa: BLE001 - student code may raise anything
                error = describe_exception(e)
            seconds = _clock() - started
            _flush_output()
            self.send({"event": Event.CELL_DONE, "index": idx, "error": error, "seconds": seconds})

    def names(self) -> dict[str, str]:
        """The namespace's names and kinds. Whatever the student put there
        (``globals()[1] = 2``, a module whose ``__name__`` raises): listing
        the names must not fail, or the grader sees the process die after
        its last cell and blames, and skips, a cell that did nothing wrong."""
        kinds = {}
        for name, value in list(self.namespace.items()):
            if type(name) is not str or name.startswith("_"):
                continue
            try:
                if isinstance(value, types.ModuleType):
                    kinds[name] = f"module:{value.__name__}"
                else:
                    kinds[name] = "callable" if callable(value) else "value"
            except BaseException:  # noqa: BLE001 - a student's __class__ or __name__ may raise anything
                kinds[name] = "value"
        return kinds

    # -- requests ----------------------------------------------------------------
    def serve(self) -> None:
        while True:
            msg, blobs = wire.read_message(self.req_fd)
            op = msg.get("op")
            if op == Op.BYE:
                return
            # The seconds in student code, for the grader's accounting: from
            # here, or from where ``dispatch`` has decoded the arguments.
            self.student_started = _clock()
            self.mutated = []
            try:
                result = self.dispatch(op, msg, blobs)
            except wire.WireError as e:
                self.send({"error": {"type": "WireError", "message": str(e), "traceback": ""}})
                continue
            except BaseException as e:  # noqa: BLE001
                self.reply_error(e, _clock() - self.student_started)
                continue
            seconds = _clock() - self.student_started
            _flush_output()
            try:
                self.reply_value(result, seconds)
            except BaseException as e:  # noqa: BLE001 - encoding a student object can fail
                self.send({"error": {"type": "WireError",
                                     "message": f"the result could not be sent back: {_safe_str(e)}",
                                     "traceback": ""}})

    def dispatch(self, op, msg, blobs):
        dec = lambda tree: wire.decode(tree, blobs, self.resolve_handle)  # noqa: E731
        if op == Op.NAMES:
            return self.names()
        if op == Op.GET:
            name = msg["name"]
            if name not in self.namespace:
                raise NameError(f"name '{name}' is not defined")
            return self.namespace[name]
        if op == Op.CALL:
            target = self.target(msg)
            args = self.place(dec(msg.get("args", [])))
            kwargs = self.place(dec(msg.get("kwargs", {"__t__": "dict", "k": [], "v": []})))
            watched = _watch(args, kwargs)
            self.student_started = _clock()
            result = target(*args, **kwargs)
            self.mutated = [(label, arg) for label, arg, before in watched if not _unchanged(arg, before)]
            return result
        if op == Op.GETATTR:
            return getattr(self.target(msg), str(msg["attr"]))
        if op == Op.GETITEM:
            target, key = self.target(msg), dec(msg["key"])
            self.student_started = _clock()
            return target[key]
        if op == Op.LEN:
            return len(self.target(msg))
        if op == Op.LIST:
            out = []
            for item in self.target(msg):
                out.append(item)
                if len(out) > MAX_ITER_ITEMS:
                    raise ValueError("iterable too long to send back")
            return out
        if op == Op.IMPORT:  # a test's import of a module the student submitted (otter's student_files)
            return importlib.import_module(str(msg["module"]))
        if op == Op.FORK_VARIANT:  # only the diagnosis sandbox gets this (answer key + one mutant)
            self.fork_variant(msg["code"])
            return {"__variant_end__": True}
        raise wire.WireError(f"unknown op {op!r}")

    def place(self, value):
        """Move the tensors of decoded arguments to the grading device."""
        if self.device == "cpu":
            return value
        torch = sys.modules.get("torch")
        if torch is not None and type(value) is torch.Tensor:
            return value.to(self.device)
        if type(value) in (list, tuple):
            return type(value)(self.place(v) for v in value)
        if type(value) is dict:
            return {k: self.place(v) for k, v in value.items()}
        return value

    def fork_variant(self, code: str) -> None:
        """Serve a copy of this process with ``code`` executed in it, until
        the trusted side says ``bye``; then go on serving as before.

        The child inherits the executed notebook (no re-execution) and the
        channel; this process waits for it, so only one of them ever reads
        the channel. Used to replay a student's calls on each mutant."""
        pid = os.fork()
        if pid == 0:
            try:
                exec(compile(code, "<mutant>", "exec"), self.namespace)
                self.reply_value(None)
            except BaseException as e:  # noqa: BLE001
                self.reply_error(e)
            self.serve()
            os._exit(0)
        os.waitpid(pid, 0)

    def target(self, msg):
        if "handle" in msg:
            return self.resolve_handle(wire.Handle(int(msg["handle"]), ""))
        name = msg["name"]
        if name not in self.namespace:
            raise NameError(f"name '{name}' is not defined")
        return self.namespace[name]


def _watch(args, kwargs) -> list[tuple[str, object, object]]:
    """``(label, argument, copy)`` for each array or tensor argument of a
    call (``"0"``, ``"1"``... positional, ``"k:name"`` keyword), so that the
    grader can tell whether the student's function modified it in place."""
    torch = sys.modules.get("torch")
    out = []
    for label, arg in [(str(i), a) for i, a in enumerate(args)] + [(f"k:{k}", v) for k, v in kwargs.items()]:
        if type(arg) is np.ndarray:
            out.append((label, arg, arg.copy()))
        elif torch is not None and type(arg) is torch.Tensor:
            out.append((label, arg, arg.detach().clone()))
    return out


def _unchanged(arg, before) -> bool:
    if type(arg) is np.ndarray:
        return arg.shape == before.shape and arg.dtype == before.dtype and np.array_equal(
            arg, before, equal_nan=arg.dtype.kind in "fc")
    arg = arg.detach()
    return (arg.shape == before.shape and arg.dtype == before.dtype
            and bool((arg == before).logical_or(arg.isnan() & before.isnan()).all()
                     if arg.is_floating_point() or arg.is_complex() else (arg == before).all()))


def _flush_output() -> None:
    """Push the student's buffered prints down the pipe (the process is
    killed, never exits normally, so nothing else would flush them)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - a student may have replaced or closed it
            pass


def _safe_str(e: BaseException, limit: int = 2000) -> str:
    try:
        return str(e)[:limit]
    except BaseException:  # noqa: BLE001
        return "<unprintable>"


def describe_exception(e: BaseException) -> dict:
    """Type, message and the student's own frames of an exception, as data."""
    try:
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename.startswith("<cell")]
        tb = "".join(traceback.format_list(frames))[-4000:]
    except BaseException:  # noqa: BLE001
        tb = ""
    return {"type": type(e).__name__[:100], "message": _safe_str(e), "traceback": tb}


def prepare(start: dict, limits: SandboxLimits, keep_fds: set[int]) -> list:
    """Privilege drop, limits and confinement, before any student code
    runs; returns the protection layers (``confinement.Layer``). (The
    preload modules were imported by the zygote before it forked us.)
    ``keep_fds``: the grader's pipes, the only descriptors that stay open."""
    from autograder.harness import jail

    sys.modules["otter"] = _otter_stub()
    torch = sys.modules.get("torch")
    if torch is not None:  # the same numbers on CPU and GPU: no TF32 shortcuts
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    layers = jail.enter_sandbox(start["workdir"], start.get("user"), limits, keep_fds)
    sys.path.insert(0, "")  # the working folder, as in a Jupyter kernel: the student's own modules import
    return layers


def serve_forked(req_fd: int, resp_fd: int) -> None:
    """Entry point of a sandbox forked by the zygote."""
    msg, _ = wire.read_message(req_fd)
    server = Server(req_fd, resp_fd)
    try:
        limits = SandboxLimits.from_dict(msg["limits"])
        server.device = limits.device
        layers = prepare(msg, limits, {req_fd, resp_fd})
    except BaseException as e:  # noqa: BLE001
        server.send({"event": Event.FATAL, "error": describe_exception(e)})
        os._exit(3)
    server.send({"event": Event.STARTED, "pid": os.getpid(),
                 "layers": [{"name": x.name, "active": x.active, "detail": x.detail} for x in layers]})
    # sys.exit() in student code is just an exception here: it is reported
    # as an error of its cell (or of the call), and the server goes on.
    server.run_cells(msg["cells"])
    server.send({"event": Event.READY, "names": server.names()})
    server.serve()
    os._exit(0)
