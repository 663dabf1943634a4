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


class MessageTooLarge(WireError):
    """A message over the receiver's byte budget (it was read and dropped,
    so the channel stays in step). ``nbytes``: what the sender claimed."""

    def __init__(self, nbytes: int, limit: int):
        super().__init__(f"a reply of {nbytes / 2**20:.1f} MB is over the limit of {limit / 2**20:.0f} MB")
        self.nbytes, self.limit = nbytes, limit


def reply_budget(memory_mb: int) -> int:
    """Bytes one reply from the sandbox may carry: a quarter of the
    assignment's ``memory_mb``. Decoding holds a reply once more at most,
    so the grader's own memory stays within Gradescope's 768 MB machine
    (issue 13: a lying reply took the grader from 278 MB to 1600 MB)."""
    return max(1, int(memory_mb)) << 18


def header_budget(max_bytes: int) -> int:
    """Bytes of a message's JSON header: JSON becomes Python objects about
    ten times its size, so it gets a sixteenth of the blob budget, and at
    least 16 MB: an over-budget header loses the channel (its blob sizes are
    in it), and the sandbox's list of names (``Event.READY``) is a header."""
    return max(16 << 20, max_bytes >> 4)


_SURROGATES_AND_CONTROLS = dict.fromkeys([*range(0xD800, 0xE000), *range(0, 9), 11, 12, *range(14, 32), 127],
                                         0xFFFD)


def clean_text(text, limit: int = 100_000) -> str:
    """A string fit to show and to write as UTF-8: lone surrogates and
    control characters (but newline, tab, carriage return) become U+FFFD,
    and at most ``limit`` characters are kept. Every string that came from
    the sandbox passes here before it reaches a report (issue 13: a
    ``"\\ud800"`` in an exception message left no results.json)."""
    if type(text) is not str:
        text = "" if text is None else repr(text) if type(text) in (int, float, bool) else "<not text>"
    if len(text) > limit:
        text = text[:limit] + " [...]"
    return text.translate(_SURROGATES_AND_CONTROLS)


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


def _discard(fd: int, n: int) -> None:
    while n > 0:
        k = len(os.read(fd, min(n, 1 << 20)))
        if not k:
            raise EOFError("the other side closed the channel")
        n -= k


def read_exact(fd: int, n: int) -> bytearray:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = os.readv(fd, [view[got: got + (1 << 20)]])
        if not k:
            raise EOFError("the other side closed the channel")
        got += k
    return buf


def read_message(fd: int, max_bytes: int = MAX_FRAME_BYTES) -> tuple[dict, list[bytearray]]:
    """Read one message written by :func:`write_message`.

    ``max_bytes`` bounds the blobs, and :func:`header_budget` of it the JSON
    header: a message over either is read to its end and dropped
    (:class:`MessageTooLarge`), so that nothing the other side claims makes
    this process allocate beyond its budget."""
    (n,) = _HEADER.unpack(read_exact(fd, _HEADER.size))
    if n > MAX_FRAME_BYTES:
        raise WireError("message header too large")
    if n > header_budget(max_bytes):
        _discard(fd, n)  # the blob sizes are in the dropped header: the channel is lost
        raise WireError(f"a message header of {n} bytes is over the limit")
    try:
        head = json.loads(read_exact(fd, n))
        sizes = head["blobs"]
        msg = head["msg"]
    except (ValueError, KeyError, TypeError, RecursionError) as e:
        raise WireError(f"malformed message header: {type(e).__name__}") from None
    if not isinstance(msg, dict) or not isinstance(sizes, list):
        raise WireError("malformed message header")
    if any(type(s) is not int or s < 0 for s in sizes) or sum(sizes) > MAX_FRAME_BYTES:
        raise WireError("malformed blob sizes")
    if sum(sizes) > max_bytes:
        _discard(fd, sum(sizes))
        raise MessageTooLarge(sum(sizes), max_bytes)
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


def _array(tree, blobs, used: set | None = None) -> np.ndarray:
    """A fresh, writable array from a tree's dtype and shape and its blob.

    The dtype must be what the blob holds: ``prod(shape) * itemsize`` bytes
    exactly, a bool array only 0 and 1 bytes. A blob backs one array only
    (``used``), so the array may own it without a copy."""
    i = tree["blob"]
    blob = _blob(blobs, tree)
    if used is not None:
        if i in used:
            raise WireError("one blob referenced twice")
        used.add(i)
    try:
        dt = np.dtype(str(tree["dtype"])[:16])
    except TypeError:
        raise WireError("malformed array dtype") from None
    if not _plain(dt) or dt.kind not in "biufcSUMm" or dt.itemsize == 0:
        raise WireError("arrays must be plain numeric arrays")
    shape = tuple(_list(tree["shape"]))
    if len(shape) > MAX_NDIM or any(type(d) is not int or d < 0 for d in shape):
        raise WireError("malformed array shape")
    if math.prod(shape) * dt.itemsize != len(blob):
        raise WireError("array shape and data disagree")
    if dt.kind == "b" and len(blob) and np.frombuffer(blob, np.uint8).max() > 1:
        raise WireError("a bool array holds bytes other than 0 and 1")
    own = isinstance(blob, bytearray) and used is not None
    arr = np.frombuffer(blob, dtype=dt).reshape(shape)
    return arr if own else arr.copy()  # a copy when the blob is shared or read-only


# numpy dtype -> the torch dtype a tensor of it is; a tensor's claimed dtype
# must be this (or bfloat16 over float32, how bfloat16 travels): a claim
# never makes the receiver convert to a wider type than was sent.
_TORCH_OF_NUMPY = {"b1": "bool", "u1": "uint8", "i1": "int8", "i2": "int16", "i4": "int32", "i8": "int64",
                   "f2": "float16", "f4": "float32", "f8": "float64", "c8": "complex64", "c16": "complex128",
                   "u2": "uint16", "u4": "uint32", "u8": "uint64"}


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
        requires_grad = x.requires_grad  # travels as a flag: tests check "stays in the graph"
        x = x.detach().cpu()
        dtype = str(x.dtype).removeprefix("torch.")
        if x.dtype in (torch.bfloat16,):
            x = x.to(torch.float32)
        tree = self.array(x.contiguous().numpy(), "tensor")
        tree["torch_dtype"] = dtype
        if requires_grad:
            tree["requires_grad"] = True
        return tree


def decode(tree, blobs: list[bytes], handle_factory=None, depth: int = 0, used: set | None = None):
    """Build a value of exact builtin / numpy / torch types from a tree.

    ``handle_factory(Handle)`` turns handles into whatever the receiving
    side wants (a remote-object proxy on the trusted side, the stored
    object on the sandbox side). Strings are :func:`clean_text`'d of lone
    surrogates. Raises :class:`WireError` on anything malformed, and only
    that (a tree from ``json.loads`` of any bytes; ``test_fuzz_wire``).
    """
    used = set() if used is None else used
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    t = type(tree)
    if tree is None or t in (bool, int):
        return tree
    if t is str:
        return _text(tree)
    if t is float:  # plain JSON numbers are accepted too
        return float(tree)
    if t is list:
        return [decode(v, blobs, handle_factory, depth + 1, used) for v in tree]
    if t is not dict:
        raise WireError(f"unexpected value of type {t.__name__}")
    tag = tree.get("__t__")
    try:
        if tag == "float":
            return float(_str(tree["v"]))
        if tag == "bigint":
            return int(_str(tree["v"]))
        if tag == "complex":
            return complex(float(_str(tree["re"])), float(_str(tree["im"])))
        if tag == "ellipsis":
            return Ellipsis
        if tag == "tuple":
            return tuple(decode(v, blobs, handle_factory, depth + 1, used) for v in _list(tree["v"]))
        if tag == "dict":
            keys = [decode(k, blobs, handle_factory, depth + 1, used) for k in _list(tree["k"])]
            vals = [decode(v, blobs, handle_factory, depth + 1, used) for v in _list(tree["v"])]
            if len(keys) != len(vals) or any(type(k) not in (str, int, float, bool, tuple) and k is not None for k in keys):
                raise WireError("malformed dict")
            return dict(zip(keys, vals))
        if tag == "bytes":
            i = tree["blob"]
            blob = _blob(blobs, tree)
            if i in used:
                raise WireError("one blob referenced twice")
            used.add(i)
            return bytes(blob)
        if tag == "ndarray":
            return _array(tree, blobs, used)
        if tag == "npscalar":
            arr = _array(tree, blobs, used)
            if arr.ndim != 0:
                raise WireError("malformed numpy scalar")
            return arr[()]
        if tag == "tensor":
            import torch

            arr = _array(tree, blobs, used)
            claimed = tree["torch_dtype"]
            sent = _TORCH_OF_NUMPY.get(arr.dtype.str[1:])
            if type(claimed) is not str or sent is None or not (
                    claimed == sent or (claimed == "bfloat16" and sent == "float32")):
                raise WireError("a tensor's dtype is not the dtype of its data")
            out = torch.from_numpy(arr)
            out = out.to(torch.bfloat16) if claimed == "bfloat16" else out
            if tree.get("requires_grad") is True and (out.is_floating_point() or out.is_complex()):
                out.requires_grad_(True)  # a fresh leaf: the flag, not the other side's graph
            return out
        if tag in wire_tables.TAGS:
            return wire_tables.decode(tree, lambda v: decode(v, blobs, handle_factory, depth + 1, used), WireError)
        if tag == "handle":
            if type(tree["id"]) is not int:
                raise WireError("malformed handle")
            h = Handle(tree["id"], _text(_str(tree["type"]))[:200])
            return handle_factory(h) if handle_factory else h
    except WireError:
        raise
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise WireError(f"malformed {tag}: {type(e).__name__}") from None
    raise WireError(f"unknown tag {clean_text(str(tag), 40)!r}")


def _str(v) -> str:
    if type(v) is not str:
        raise WireError("expected a string")
    return v


def _text(v: str) -> str:
    """A decoded string without lone surrogates (they cannot be written as UTF-8)."""
    try:
        v.encode("utf-8")
        return v
    except UnicodeEncodeError:
        return v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


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
