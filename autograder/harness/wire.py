"""Runs in: both the grader and the sandbox. Plain data across the sandbox boundary: framing, encoding, decoding.

Values travel as a JSON tree plus binary blobs: an array is its raw bytes,
with its dtype and shape in the tree. Decoding builds fresh objects of exact
builtin, numpy or torch types from that data (plain dtypes only, never
``object``), so whatever a student's object
claimed to be (a float subclass with a lying ``__eq__``, an ndarray with a
forged ``__array_ufunc__``), the trusted side only ever holds genuine
values. Anything that is not data is sent as a handle (an id into the
sandbox's object table) and stays on the untrusted side. Nothing is ever
unpickled.
"""
from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass

import numpy as np

from autograder.harness import wire_tables

MAX_FRAME_BYTES = 1 << 30  # a single message larger than this is refused
MAX_DEPTH = 64  # nesting deeper than this is refused
_HEADER = struct.Struct("!Q")


class WireError(Exception):
    """The other side sent something that is not a well-formed message."""


@dataclass(frozen=True)
class Handle:
    """A reference to an object that lives in the sandbox.

    Attributes:
        id: key of the object in the sandbox's handle table.
        type_name: the object's type as ``module.QualName``, for messages.
    """

    id: int
    type_name: str


# ----------------------------------------------------------------------------
# framing: [8-byte length][JSON header][8-byte length][blob]...


def write_message(fd: int, obj: dict, blobs: list | None = None) -> None:
    """Write one message (a JSON-able dict plus optional binary blobs, any
    bytes-like objects) to ``fd``."""
    blobs = [memoryview(b).cast("B") for b in blobs or []]
    head = json.dumps({"msg": obj, "blobs": [b.nbytes for b in blobs]}).encode()
    for part in [memoryview(_HEADER.pack(len(head)) + head), *blobs]:
        while part:
            part = part[os.write(fd, part[: 1 << 20]):]


def read_exact(fd: int, n: int) -> bytearray:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = os.readv(fd, [view[got: got + (1 << 20)]])
        if not k:
            raise EOFError("the other side closed the channel")
        got += k
    return buf


def read_message(fd: int) -> tuple[dict, list[bytearray]]:
    """Read one message written by :func:`write_message`."""
    (n,) = _HEADER.unpack(read_exact(fd, _HEADER.size))
    if n > MAX_FRAME_BYTES:
        raise WireError("message header too large")
    try:
        head = json.loads(read_exact(fd, n))
        sizes = head["blobs"]
        msg = head["msg"]
    except (ValueError, KeyError, TypeError) as e:
        raise WireError(f"malformed message header: {type(e).__name__}") from None
    if not isinstance(msg, dict) or not isinstance(sizes, list):
        raise WireError("malformed message header")
    if any(type(s) is not int or s < 0 for s in sizes) or sum(sizes) > MAX_FRAME_BYTES:
        raise WireError("malformed blob sizes")
    return msg, [read_exact(fd, s) for s in sizes]


# ----------------------------------------------------------------------------
# values


MAX_NDIM = 32


def _plain(dt: np.dtype) -> bool:
    """Numbers, booleans, strings, dates: not objects, not records."""
    return not dt.hasobject and dt.fields is None and dt.subdtype is None


def _plain_dtype(arr: np.ndarray) -> bool:
    """Whether an array's dtype is plain and travels as ``dtype.str``."""
    return _plain(arr.dtype) and np.dtype(arr.dtype.str) == arr.dtype


def _array(tree, blobs) -> np.ndarray:
    """A fresh, writable array from a tree's dtype and shape and its blob."""
    blob = _blob(blobs, tree)
    try:
        dt = np.dtype(str(tree["dtype"]))
    except TypeError:
        raise WireError("malformed array dtype") from None
    if not _plain(dt):
        raise WireError("arrays must be plain numeric arrays")
    shape = tuple(_list(tree["shape"]))
    if len(shape) > MAX_NDIM or any(type(d) is not int or d < 0 for d in shape):
        raise WireError("malformed array shape")
    if math.prod(shape) * dt.itemsize != len(blob):
        raise WireError("array shape and data disagree")
    return np.frombuffer(blob, dtype=dt).reshape(shape).copy()  # a copy: one blob, one owner


def _torch():
    import sys

    return sys.modules.get("torch")


class Encoder:
    """Turns a value into (JSON tree, blobs). ``make_handle`` decides what
    happens to objects that are not data (the sandbox stores them and
    returns a :class:`Handle`; the trusted side refuses them)."""

    def __init__(self, make_handle):
        self.blobs: list[bytes] = []
        self.make_handle = make_handle

    def array(self, arr: np.ndarray, tag: str) -> dict:
        if not arr.flags.c_contiguous:
            arr = arr.copy(order="C")
        self.blobs.append(arr.reshape(-1).view(np.uint8) if arr.size else b"")
        return {"__t__": tag, "blob": len(self.blobs) - 1, "dtype": arr.dtype.str, "shape": list(arr.shape)}

    def encode(self, x, depth: int = 0):
        if depth > MAX_DEPTH:
            raise WireError("value nested too deeply")
        t = type(x)
        if x is None or t is bool or t is str:
            return x
        if t is int:
            return x if abs(x) < 2**53 else {"__t__": "bigint", "v": str(x)}
        if t is float:
            return {"__t__": "float", "v": repr(x)}
        if t is complex:
            return {"__t__": "complex", "re": repr(x.real), "im": repr(x.imag)}
        if x is Ellipsis:
            return {"__t__": "ellipsis"}
        if t is bytes:
            self.blobs.append(x)
            return {"__t__": "bytes", "blob": len(self.blobs) - 1}
        if t is list or t is tuple:
            items = [self.encode(v, depth + 1) for v in x]
            return items if t is list else {"__t__": "tuple", "v": items}
        if t is dict:
            return {
                "__t__": "dict",
                "k": [self.encode(k, depth + 1) for k in x.keys()],
                "v": [self.encode(v, depth + 1) for v in x.values()],
            }
        if t is np.ndarray and _plain_dtype(x):
            return self.array(x, "ndarray")
        if isinstance(x, np.generic) and t.__module__ == "numpy" and _plain_dtype(np.asarray(x)):
            return self.array(np.asarray(x), "npscalar")
        torch = _torch()
        if torch is not None and t in (torch.Tensor, torch.nn.Parameter):
            return self._tensor(torch, x)
        if isinstance(x, Handle):
            return {"__t__": "handle", "id": x.id, "type": x.type_name}
        table = wire_tables.encode(self, x, depth)  # DataFrame, Series, generator as plain parts
        return table if table is not None else self.make_handle(x)

    def _tensor(self, torch, x):
        x = x.detach().cpu()
        dtype = str(x.dtype).removeprefix("torch.")
        if x.dtype in (torch.bfloat16,):
            x = x.to(torch.float32)
        tree = self.array(x.contiguous().numpy(), "tensor")
        tree["torch_dtype"] = dtype
        return tree


def decode(tree, blobs: list[bytes], handle_factory=None, depth: int = 0):
    """Build a value of exact builtin / numpy / torch types from a tree.

    ``handle_factory(Handle)`` turns handles into whatever the receiving
    side wants (a remote-object proxy on the trusted side, the stored
    object on the sandbox side). Raises :class:`WireError` on anything
    malformed.
    """
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    t = type(tree)
    if tree is None or t in (bool, int, str):
        return tree
    if t is float:  # plain JSON numbers are accepted too
        return float(tree)
    if t is list:
        return [decode(v, blobs, handle_factory, depth + 1) for v in tree]
    if t is not dict:
        raise WireError(f"unexpected value of type {t.__name__}")
    tag = tree.get("__t__")
    try:
        if tag == "float":
            return float(str(tree["v"]))
        if tag == "bigint":
            return int(str(tree["v"]))
        if tag == "complex":
            return complex(float(str(tree["re"])), float(str(tree["im"])))
        if tag == "ellipsis":
            return Ellipsis
        if tag == "tuple":
            return tuple(decode(v, blobs, handle_factory, depth + 1) for v in _list(tree["v"]))
        if tag == "dict":
            keys = [decode(k, blobs, handle_factory, depth + 1) for k in _list(tree["k"])]
            vals = [decode(v, blobs, handle_factory, depth + 1) for v in _list(tree["v"])]
            if len(keys) != len(vals) or any(type(k) not in (str, int, float, bool, tuple) and k is not None for k in keys):
                raise WireError("malformed dict")
            return dict(zip(keys, vals))
        if tag == "bytes":
            return bytes(_blob(blobs, tree))
        if tag == "ndarray":
            return _array(tree, blobs)
        if tag == "npscalar":
            arr = _array(tree, blobs)
            if arr.ndim != 0:
                raise WireError("malformed numpy scalar")
            return arr[()]
        if tag == "tensor":
            import torch

            out = torch.from_numpy(_array(tree, blobs))
            dtype = getattr(torch, str(tree["torch_dtype"]), None)
            if isinstance(dtype, torch.dtype) and dtype != out.dtype:
                out = out.to(dtype)
            return out
        if tag in wire_tables.TAGS:
            return wire_tables.decode(tree, lambda v: decode(v, blobs, handle_factory, depth + 1), WireError)
        if tag == "handle":
            h = Handle(int(tree["id"]), str(tree["type"])[:200])
            return handle_factory(h) if handle_factory else h
    except WireError:
        raise
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise WireError(f"malformed {tag}: {type(e).__name__}") from None
    raise WireError(f"unknown tag {str(tag)[:40]!r}")


def _list(v):
    if type(v) is not list:
        raise WireError("expected a list")
    return v


def _blob(blobs, tree) -> bytes:
    i = tree["blob"]
    if type(i) is not int or not 0 <= i < len(blobs):
        raise WireError("bad blob reference")
    return blobs[i]


def encode_value(x, make_handle) -> tuple[object, list[bytes]]:
    """Encode one value; returns the JSON tree and its blobs."""
    enc = Encoder(make_handle)
    tree = enc.encode(x)
    return tree, enc.blobs
