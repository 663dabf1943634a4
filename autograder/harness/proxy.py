"""Runs in: the grader. Stand-ins for the student's names.

A test cell sees ``softmax`` (a student function) as a :class:`RemoteCallable`:
calling it encodes the arguments as data, runs the function in the sandbox
and decodes the result into fresh objects of exact types. Objects that are
not data come back as :class:`RemoteObject` handles, usable the same way.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from autograder.harness import wire
from autograder.harness.protocol import Op
from autograder.harness.sandbox_handle import Sandbox, SandboxTimeout, StudentError


@dataclass
class RecordedCall:
    """A call to a student function as it was sent (so it can be replayed on
    a mutant) and what came back.

    Attributes:
        msg: the request, arguments encoded.
        blobs: the request's binary blobs.
        value: the decoded result (when it returned).
        error: the exception type name (when it raised).
    """

    msg: dict
    blobs: list
    value: object = None
    error: str | None = None


class Session:
    """A sandbox plus what grading one question against it may use.

    Attributes:
        sandbox: the student's process.
        declared: names tests may fetch from the student (``Assignment.student_names``).
        modules: alias -> module of the answer key's imports (``Assignment.modules``).
        deadline: ``time.monotonic()`` by which the question must be done.
        byte_budget, bytes_left: reply bytes a question may receive in all, and still (set per question).
        recording: calls to student functions, for diagnosis.
    """

    def __init__(self, sandbox: Sandbox, declared=(), modules: dict[str, str] | None = None):
        self.sandbox = sandbox
        self.declared = frozenset(declared)
        self.modules = dict(modules or {})
        self.deadline = float("inf")
        self.bytes_left = self.byte_budget = float("inf")
        self.recording: list[RecordedCall] | None = None

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
        """One request; its reply decoded (``wire.decode``), within the
        question's byte budget (its blobs already bounded one by one)."""
        reply = self.sandbox.request(msg, blobs, self.remaining())
        got = reply.get("_blobs", [])
        self.bytes_left -= sum(len(b) for b in got)
        if self.bytes_left < 0:
            raise wire.MessageTooLarge(self.byte_budget - self.bytes_left, self.byte_budget)
        return wire.decode(reply.get("ok"), got, self.wrap_handle)

    def wrap_handle(self, h: wire.Handle) -> "RemoteObject":
        return RemoteObject(self, h)

    def call(self, target: dict, args, kwargs):
        msg, blobs = self.encode({"op": Op.CALL, **target}, {"args": list(args), "kwargs": dict(kwargs)})
        record = self.recording is not None and "name" in target and not any(
            isinstance(v, RemoteObject) for v in (*args, *kwargs.values()))
        if record:  # the blobs are views of the test's arrays, which the test may change later
            blobs = [bytes(b) for b in blobs]
        try:
            value = self.send(msg, blobs)
        except StudentError as e:
            if record:
                self.recording.append(RecordedCall(dict(msg), blobs, error=str(e.info.get("type"))))
            raise
        if record:
            self.recording.append(RecordedCall(dict(msg), blobs, value=value))
        return value

    def get(self, name: str):
        return self.request({"op": Op.GET, "name": name})


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

    def __call__(self, *args, **kwargs):
        return self._session.call({"name": self._name}, args, kwargs)

    def __repr__(self):
        return f"<student function {self._name}>"


class RemoteObject:
    """A student object that is not data (an ``nn.Module``, an optimizer...)."""

    def __init__(self, session: Session, handle: wire.Handle):
        self._session, self._handle = session, handle

    def _target(self) -> dict:
        return {"handle": self._handle.id}

    def __call__(self, *args, **kwargs):
        return self._session.call(self._target(), args, kwargs)

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
