"""Fuzzing the trusted side's intake (issue 13): whatever bytes or JSON the
sandbox sends end as a value or a ``WireError``, never another exception,
never memory beyond the budget; and whatever text a student's answers
carry, the results writers produce a valid results.json and UTF-8 feedback."""
import json
import os
import threading
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autograder.gradescope import failure_json, results_json, validate_results
from autograder.harness import wire
from autograder.records import Assignment, Question, QuestionResult, SubmissionResult, TestCase, TestOutcome
from autograder.report import feedback_markdown

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), any_text)
DTYPES = ["|b1", "|u1", "<i4", "<i8", "<f4", "<f8", "<c16", "|O", "V8", "<U0", "<U3", ">f8", "x", "<M8[s]"]
TORCH_DTYPES = ["bool", "uint8", "int64", "float32", "float64", "complex128", "bfloat16", "Tensor", "nope"]


def tagged(children):
    """The tagged forms the decoder knows, with fields of any JSON type."""
    field = st.one_of(scalars, children)
    shape = st.one_of(st.lists(st.integers(-2, 6), max_size=4), field)
    blob = st.one_of(st.integers(-1, 4), field)
    return st.one_of(
        st.fixed_dictionaries({"__t__": st.sampled_from(["float", "bigint"]), "v": st.one_of(field, st.text(max_size=30))}),
        st.fixed_dictionaries({"__t__": st.just("complex"), "re": field, "im": field}),
        st.fixed_dictionaries({"__t__": st.sampled_from(["tuple", "ellipsis"]), "v": st.lists(children, max_size=4)}),
        st.fixed_dictionaries({"__t__": st.just("dict"), "k": st.lists(children, max_size=3),
                               "v": st.lists(children, max_size=3)}),
        st.fixed_dictionaries({"__t__": st.sampled_from(["ndarray", "npscalar", "tensor", "bytes"]), "blob": blob,
                               "dtype": st.one_of(st.sampled_from(DTYPES), field), "shape": shape,
                               "torch_dtype": st.one_of(st.sampled_from(TORCH_DTYPES), field)}),
        st.fixed_dictionaries({"__t__": st.sampled_from(["handle", "module", "??"]), "id": field, "type": field}),
        st.dictionaries(any_text, children, max_size=3),
    )


trees = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=4), tagged(c)), max_leaves=25)
blob_lists = st.lists(st.binary(max_size=64), max_size=5)


@FUZZ
@given(trees, blob_lists)
def test_decode_any_tree_gives_a_value_or_a_wire_error(tree, blobs):
    blobs = [bytearray(b) for b in blobs]
    try:
        value = wire.decode(tree, blobs)
    except wire.WireError as e:
        assert isinstance(e, wire.WireError)  # the one exception the decoder may raise
        return
    assert _only_genuine(value) is None  # raises AssertionError on any non-genuine leaf


def _only_genuine(value, depth=0):
    """Decoded values are of exact builtin, numpy or torch types, strings UTF-8."""
    import torch

    t = type(value)
    assert depth <= wire.MAX_DEPTH + 1
    if t is str:
        value.encode("utf-8")
    elif t in (list, tuple):
        for v in value:
            _only_genuine(v, depth + 1)
    elif t is dict:
        for k, v in value.items():
            _only_genuine(k, depth + 1)
            _only_genuine(v, depth + 1)
    elif t is np.ndarray:
        assert not value.dtype.hasobject
    elif t is torch.Tensor:
        pass
    else:
        assert value is None or value is Ellipsis or t in (bool, int, float, complex, bytes, wire.Handle) \
            or isinstance(value, np.generic), t


@FUZZ
@given(st.binary(max_size=2000))
def test_read_message_of_any_bytes_is_a_message_or_a_wire_error(data):
    got = _read_from_pipe(data, max_bytes=1 << 16)
    assert got is None or isinstance(got, tuple)


@FUZZ
@given(st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(any_text, c, max_size=3))),
       st.lists(st.integers(0, 200), max_size=4))
def test_framed_json_of_any_shape_is_a_message_or_a_wire_error(msg, sizes):
    head = json.dumps({"msg": msg, "blobs": sizes}).encode("utf-8", "surrogatepass")
    data = len(head).to_bytes(8, "big") + head + bytes(sum(sizes))
    got = _read_from_pipe(data, max_bytes=100)
    if got is not None:
        assert sum(len(b) for b in got[1]) <= 100


def _read_from_pipe(data: bytes, max_bytes: int):
    r, w = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(w, data) if data else None, os.close(w)))
    writer.start()
    try:
        return wire.read_message(r, max_bytes)
    except (wire.WireError, EOFError):
        return None
    finally:
        writer.join()
        os.close(r)


def test_a_message_over_budget_is_dropped_and_the_channel_stays_in_step():
    r, w = os.pipe()
    big = np.zeros(8 << 10, np.uint8)  # fits the pipe: written before it is read
    wire.write_message(w, {"ok": 1}, [big])
    wire.write_message(w, {"ok": 2}, [b"ab"])
    os.close(w)
    with pytest.raises(wire.MessageTooLarge):
        wire.read_message(r, max_bytes=1 << 10)
    msg, blobs = wire.read_message(r, max_bytes=1 << 10)
    assert msg == {"ok": 2} and bytes(blobs[0]) == b"ab"
    os.close(r)


def test_decoding_never_allocates_more_than_twice_what_was_sent():
    """A 40 MB bool blob claiming to be complex128 (issue 13: 278 MB ->
    1600 MB resident) is refused; an honest one costs at most its size."""
    blob = bytearray(40 << 20)
    lying = {"__t__": "tensor", "blob": 0, "dtype": "|b1", "shape": [40 << 20], "torch_dtype": "complex128"}
    tracemalloc.start()
    try:
        with pytest.raises(wire.WireError):
            wire.decode(lying, [blob])
        honest = dict(lying, torch_dtype="bool")
        value = wire.decode(honest, [blob])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert value.dtype.is_floating_point is False and value.numel() == 40 << 20
    assert peak < 2 * len(blob)


# ---------------------------------------------------------------------------- results writers

def _result(text: str, extra: str) -> SubmissionResult:
    t = TestCase("q1", 0, "pass", True, 1.0)
    q = Question("q1", 1.0, (t,))
    a = Assignment("week01", "t", (q,))
    res = SubmissionResult("s" + extra[:5], a, messages=[text, extra], stdout=extra, flags=[extra])
    res.questions = [QuestionResult(q, [TestOutcome(t, False, text + extra)], note=extra, mistake=extra[:10],
                                    diagnosis=text)]
    return res


@FUZZ
@given(any_text, st.text(max_size=200))
def test_results_writers_make_valid_utf8_whatever_the_text(text, extra):
    res = _result(text, extra)
    for data in (results_json(res), failure_json(text + extra, 3.0)):
        assert validate_results(data) == []
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    feedback_markdown(res).encode("utf-8")


@FUZZ
@given(any_text)
def test_clean_text_is_utf8_and_free_of_control_characters(text):
    out = wire.clean_text(text, 30)
    out.encode("utf-8")
    assert len(out) <= 36
    assert not any(ord(c) < 32 and c not in "\n\t\r" for c in out)


def test_validator_rejects_undocumented_keys_and_surrogates():
    assert validate_results({"score": 1.0, "max_score": 2.0, "tests": []}) == ["unknown top-level key 'max_score'"]
    assert validate_results({"score": 1.0, "tests": [{"score": 1, "weird": 2}]})
    assert validate_results({"score": 1.0, "output": "\ud800"})
    assert validate_results({"score": float("nan")})
