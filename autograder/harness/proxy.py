"""Runs in: the grader. Stand-ins for the student's names.

A test cell sees ``softmax`` (a student function) as a :class:`RemoteCallable`:
calling it encodes the arguments as data, runs the function in the sandbox
and decodes the result into fresh objects of exact types. Objects that are
not data come back as :class:`RemoteObject` handles, usable the same way.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from autograder.harness import wire
from autograder.harness.protocol import Op
from autograder.harness.sandbox_handle import Sandbox, SandboxTimeout, StudentError


@dataclass(frozen=True)
class CallObservation:
    """What a call to a student function did besides returning: which of
    its array or tensor arguments it modified in place (``"0"``, ``"1"``...
    positional, ``"k:name"`` keyword). A test reads it as
    ``f.last_call.mutated`` to check "do not modify the input".

    The sandbox compares each argument with a copy taken before the call;
    like every reply it is the student's process speaking, so it is a check
    of a stated requirement, never a way for points to come in unearned:
    an argument reported changed is copied back into the test's own array
    only in public tests (where otter's in-kernel checks see the same), never
    in hidden ones, whose reference values must not depend on the sandbox."""

    mutated: tuple[str, ...] = ()


@dataclass
class RecordedCall:
    """A call to a student function as it was sent (so it can be replayed on
    a mutant) and what came back.

    Attributes:
        msg: the request, arguments encoded.
        blobs: the request's binary blobs.
        value: the decoded result (when it returned).
        error: the exception type name (when it raised).
        mutated: the arguments it changed in place (``CallObservation``).
    """

    msg: dict
    blobs: list
    value: object = None
    error: str | None = None
    mutated: tuple[str, ...] = ()


class Session:
    """A sandbox plus what grading one question against it may use.

    Attributes:
        sandbox: the student's process.
        declared: names tests may fetch from the student (``Assignment.student_names``).
        modules: alias -> module of the answer key's imports (``Assignment.modules``).
        student_modules: modules the student submits (``Assignment.student_modules``):
            a test's import of one is :meth:`student_module`.
        deadline: ``time.monotonic()`` by which the question must be done.
        byte_budget, bytes_left: reply bytes a question may receive in all, and still (set per question).
        recording: calls to student functions, for diagnosis.
    """

    def __init__(self, sandbox: Sandbox, declared=(), modules: dict[str, str] | None = None, student_modules=()):
        self.sandbox = sandbox
        self.declared = frozenset(declared)
        self.modules = dict(modules or {})
        self.student_modules = frozenset(student_modules)
        self.deadline = float("inf")
        self.bytes_left = self.byte_budget = float("inf")
        self.recording: list[RecordedCall] | None = None
        self.mirror_mutations = False  # copy in-place changes back into the test's arguments (public tests)
        self.last_call = CallObservation()  # what the latest call did to its arguments

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise SandboxTimeout()
        return left

    def request(self, msg: dict, payload=None):
        msg, blobs = self.encode(msg, payload)
        return self.send(msg, blobs)

    @staticmethod
    def encode(msg: dict, payload=None) -> tuple[dict, list[bytes]]:
        blobs: list[bytes] = []
        for key, value in (payload or {}).items():
            tree, extra = _encode_for_sandbox(value, len(blobs))
            msg[key] = tree
            blobs += extra
        return msg, blobs

    def send(self, msg: dict, blobs: list[bytes]):
        """One request; its reply decoded (``wire.decode``)."""
        return self.exchange(msg, blobs)[0]

    def exchange(self, msg: dict, blobs: list[bytes], args=None) -> tuple[object, CallObservation]:
        """One request, within the question's byte budget (the reply's blobs
        already bounded one by one): the decoded value, and for a call what
        it did to its arguments (``args``: what the test passed, positional
        and keyword; ``None`` otherwise, or for a replayed call, whose labels
        are taken as sent)."""
        reply = self.sandbox.request(msg, blobs, self.remaining())
        got = reply.get("_blobs", [])
        self.bytes_left -= sum(len(b) for b in got)
        if self.bytes_left < 0:
            raise wire.MessageTooLarge(self.byte_budget - self.bytes_left, self.byte_budget)
        value = wire.decode(reply.get("ok"), got, self.wrap_handle)
        return value, self._mutations(reply, args)

    def _mutations(self, reply: dict, args: tuple[tuple, dict]) -> CallObservation:
        """Validate the sandbox's report of changed arguments: a label must
        name an array or tensor argument of this call, and the new value
        must have its exact type, shape and dtype (anything else is ignored
        as malformed, the label kept: the student's code did change it)."""
        report = reply.get("mutated")
        if type(report) is not dict:
            return CallObservation()
        if args is None:  # a replayed call (diagnosis): the labels only
            return CallObservation(tuple(label for label in list(report)[:64] if type(label) is str))
        positional, keywords = args
        labels = []
        for label in list(report)[:len(positional) + len(keywords)]:
            if type(label) is not str:
                continue
            if label.isdigit() and int(label) < len(positional):
                original = positional[int(label)]
            elif label.startswith("k:") and label[2:] in keywords:
                original = keywords[label[2:]]
            else:
                continue
            labels.append(label)
            if self.mirror_mutations:
                _copy_back(original, report[label], reply.get("_blobs", []))
        return CallObservation(tuple(labels))

    def wrap_handle(self, h: wire.Handle) -> "RemoteObject":
        return RemoteObject(self, h)

    def call(self, target: dict, args, kwargs):
        msg, blobs = self.encode({"op": Op.CALL, **target}, {"args": list(args), "kwargs": dict(kwargs)})
        record = self.recording is not None and "name" in target and not any(
            isinstance(v, RemoteObject) for v in (*args, *kwargs.values()))
        if record:  # the blobs are views of the test's arrays, which the test may change later
            blobs = [bytes(b) for b in blobs]
        self.last_call = CallObservation()
        try:
            value, self.last_call = self.exchange(msg, blobs, (args, kwargs))
        except StudentError as e:
            if record:
                self.recording.append(RecordedCall(dict(msg), blobs, error=str(e.info.get("type"))))
            raise
        if record:
            self.recording.append(RecordedCall(dict(msg), blobs, value=value, mutated=self.last_call.mutated))
        return value

    def get(self, name: str):
        return self.request({"op": Op.GET, "name": name})

    def student_module(self, module: str) -> "RemoteObject":
        """A module the student submitted, imported in the sandbox (never
        here): a handle whose attributes come back as data, whose functions
        are called there. ``module`` comes from the test's code, and only
        names under :attr:`student_modules` are asked for."""
        if module.split(".")[0] not in self.student_modules:
            raise ImportError(f"{module} is not a module the student submits")
        value = self.request({"op": Op.IMPORT, "module": module})
        if not isinstance(value, RemoteObject):
            raise ImportError(f"importing the student's {module} did not give a module")
        return value


def _copy_back(original, tree, blobs) -> None:
    """Write an argument's new value (as the sandbox sent it) into the test's
    own array or tensor, when it has exactly the original's type, shape and
    dtype; anything else is left as it was."""
    try:
        new = wire.decode(tree, blobs)
    except wire.WireError:
        return
    if type(new) is not type(original) or new.shape != original.shape or new.dtype != original.dtype:
        return
    if type(original) is np.ndarray:
        if original.flags.writeable:
            np.copyto(original, new)
        return
    import torch

    with torch.no_grad():
        original.copy_(new)


def _encode_for_sandbox(value, blob_offset: int):
    def refuse(x):
        if isinstance(x, RemoteObject):
            return {"__t__": "handle", "id": x._handle.id, "type": x._handle.type_name}
        raise TypeError(f"a {type(x).__name__} cannot be sent to student code (only data)")

    enc = wire.Encoder(refuse)
    enc.blobs = [b""] * blob_offset  # keep blob indices global to the message
    tree = enc.encode(value)
    return tree, enc.blobs[blob_offset:]


class RemoteCallable:
    """A student function (or class) called by name."""

    def __init__(self, session: Session, name: str):
        self._session, self._name = session, name
        self.last_call = CallObservation()  # what the latest call did besides returning

    def __call__(self, *args, **kwargs):
        try:
            return self._session.call({"name": self._name}, args, kwargs)
        finally:
            self.last_call = self._session.last_call

    def __repr__(self):
        return f"<student function {self._name}>"


class RemoteObject:
    """A student object that is not data (an ``nn.Module``, an optimizer...)."""

    def __init__(self, session: Session, handle: wire.Handle):
        self._session, self._handle = session, handle
        self.last_call = CallObservation()  # what the latest call did besides returning

    def _target(self) -> dict:
        return {"handle": self._handle.id}

    def __call__(self, *args, **kwargs):
        try:
            return self._session.call(self._target(), args, kwargs)
        finally:
            self.last_call = self._session.last_call

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return self._session.request({"op": Op.GETATTR, **self._target(), "attr": attr})

    def __getitem__(self, key):
        return self._session.request({"op": Op.GETITEM, **self._target()}, {"key": key})

    def __len__(self):
        n = self._session.request({"op": Op.LEN, **self._target()})
        if type(n) is not int:
            raise TypeError("len() of a student object did not return an int")
        return n

    def __iter__(self):
        items = self._session.request({"op": Op.LIST, **self._target()})
        if type(items) is not list:
            raise TypeError("a student iterable did not come back as a list")
        return iter(items)

    def __repr__(self):
        return f"<student object of type {self._handle.type_name}>"
