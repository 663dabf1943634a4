"""Runs in: both the grader and the sandbox. Plain-data wire forms for the
objects real otter courses test: pandas ``DataFrame`` and ``Series``, and
generators.

A table travels as its parts, each already a wire form: column labels and
index labels as plain values, each column as a plain numeric array (or a
list of plain scalars for text columns). The trusted side rebuilds a real
``DataFrame``/``Series`` from those parts with its own pandas, so a student
subclass or a forged ``__eq__``/``__repr__`` never arrives; anything in a
table that is not plain (objects, nested frames) makes the whole table stay
in the sandbox as a handle, as before. A generator is drawn in the sandbox
(student code runs there, within the call's time limit) up to
``MAX_GENERATOR_ITEMS`` items and arrives as an iterator over them: tests
such as ``f = fiberator(); assert next(f) == 0`` (otter's tutorial) work, and
an infinite generator costs a bounded amount.

Hooks: ``wire.Encoder.encode`` calls :func:`encode` before making a handle,
``wire.decode`` calls :func:`decode` for the tags in :data:`TAGS`.
"""
from __future__ import annotations

import itertools
import sys
import types

import numpy as np

TAGS = ("dataframe", "series", "iterator")
MAX_GENERATOR_ITEMS = 10_000
MAX_COLUMNS = 10_000
_SCALARS = (str, int, float, bool, type(None))


class NotPlain(Exception):
    """Part of the value is not plain data: send the whole value as a handle."""


def _pandas():
    return sys.modules.get("pandas")


def _column(enc, values, depth: int):
    """One column or index's values: a plain array, or a list of plain scalars."""
    arr = np.asarray(values)
    if arr.dtype.kind in "biufcmM" and arr.dtype.fields is None:
        return enc.array(np.ascontiguousarray(arr), "ndarray")
    items = list(values)
    if not all(type(v) in _SCALARS or (isinstance(v, np.generic) and type(v).__module__ == "numpy") for v in items):
        raise NotPlain
    return [enc.encode(v, depth + 1) for v in items]


def _index(enc, index, depth: int):
    pd = _pandas()
    if type(index) is pd.RangeIndex:
        return {"range": [int(index.start), int(index.stop), int(index.step)], "name": _label(enc, index.name, depth)}
    if type(index) is pd.MultiIndex:
        raise NotPlain
    return {"values": _column(enc, index, depth), "name": _label(enc, index.name, depth)}


def _label(enc, label, depth: int):
    if type(label) in _SCALARS or (type(label) is tuple and all(type(v) in _SCALARS for v in label)):
        return enc.encode(label, depth + 1)
    if isinstance(label, np.generic) and type(label).__module__ == "numpy":
        return enc.encode(label.item(), depth + 1)
    raise NotPlain


def encode(enc, x, depth: int):
    """The wire form of ``x`` if it is a table or a generator, else None."""
    t = type(x)
    if t is types.GeneratorType:
        items = list(itertools.islice(x, MAX_GENERATOR_ITEMS))
        return {"__t__": "iterator", "v": [enc.encode(v, depth + 1) for v in items]}
    pd = _pandas()
    if pd is None or t not in (pd.DataFrame, pd.Series):
        return None
    blobs_before = len(enc.blobs)
    try:
        if t is pd.Series:
            return {"__t__": "series", "name": _label(enc, x.name, depth), "index": _index(enc, x.index, depth),
                    "values": _column(enc, x.to_numpy(), depth)}
        if x.shape[1] > MAX_COLUMNS or type(x.columns) is pd.MultiIndex:
            raise NotPlain
        return {"__t__": "dataframe", "index": _index(enc, x.index, depth),
                "columns": [_label(enc, c, depth) for c in x.columns],
                "data": [_column(enc, x.iloc[:, k].to_numpy(), depth) for k in range(x.shape[1])]}
    except NotPlain:
        del enc.blobs[blobs_before:]
        return None


def decode(tree: dict, decode_part, error: type):
    """Rebuild a table or iterator with the receiving side's own pandas.
    ``decode_part`` decodes a nested wire value; ``error`` is raised for
    anything malformed."""
    tag = tree["__t__"]
    if tag == "iterator":
        items = decode_part(tree["v"])
        if type(items) is not list or len(items) > MAX_GENERATOR_ITEMS:
            raise error("malformed iterator")
        return iter(items)
    try:
        import pandas as pd
    except ImportError:
        raise error("a table arrived but pandas is not installed on this side") from None

    def plain(v):  # a label or a text column's cell: never a handle, whatever the sender claims
        if type(v) in _SCALARS or (isinstance(v, np.generic) and type(v).__module__ == "numpy"):
            return v
        if type(v) is tuple and all(type(e) in _SCALARS for e in v):
            return v
        raise error("a table label or cell is not a plain value")

    def values(part):
        v = decode_part(part)
        if type(v) is np.ndarray:
            if v.ndim != 1:
                raise error("a table column must be one-dimensional")
            return v
        if type(v) is not list:
            raise error("malformed table column")
        return [plain(e) for e in v]

    def index(part):
        if type(part) is not dict:
            raise error("malformed table index")
        name = plain(decode_part(part.get("name")))
        if "range" in part:
            r = part["range"]
            if type(r) is not list or len(r) != 3 or any(type(v) is not int for v in r) or r[2] == 0:
                raise error("malformed range index")
            return pd.RangeIndex(r[0], r[1], r[2], name=name)
        return pd.Index(values(part["values"]), name=name)

    idx = index(tree["index"])
    if tag == "series":
        vals = values(tree["values"])
        if len(vals) != len(idx):
            raise error("a series' index and values disagree in length")
        return pd.Series(vals, index=idx, name=plain(decode_part(tree.get("name"))))
    if type(tree["columns"]) is not list:
        raise error("malformed table columns")
    cols = [plain(decode_part(c)) for c in tree["columns"]]
    data = [values(c) for c in tree["data"]]
    if len(cols) != len(data) or len(cols) > MAX_COLUMNS \
            or any(len(d) != len(idx) for d in data):
        raise error("a table's columns, index and data disagree")
    frame = pd.DataFrame({k: d for k, d in enumerate(data)}, index=idx)
    frame.columns = pd.Index(cols) if cols else frame.columns
    return frame
