"""Plain data across the boundary: round trips, and nothing else gets through."""
import io
import os

import numpy as np
import pytest
import torch

from autograder.harness import wire


def _roundtrip(x):
    tree, blobs = wire.encode_value(x, lambda obj: (_ for _ in ()).throw(TypeError("not data")))
    return wire.decode(tree, blobs)


def test_roundtrip_of_plain_values_keeps_exact_types():
    value = {"a": [1, 2.5, None, True, "s", b"\x00\x01", 3 + 4j, Ellipsis, 2**80],
             "t": (np.arange(6.0).reshape(2, 3), torch.eye(2, dtype=torch.float64), np.float32(1.5))}
    out = _roundtrip(value)
    assert out["a"] == value["a"]
    assert type(out["t"]) is tuple
    arr, ten, scalar = out["t"]
    assert type(arr) is np.ndarray and np.array_equal(arr, value["t"][0])
    assert type(ten) is torch.Tensor and ten.dtype == torch.float64 and torch.equal(ten, value["t"][1])
    assert type(scalar) is np.float32 and scalar == 1.5


def test_nan_and_inf_survive_as_floats():
    out = _roundtrip([float("nan"), float("inf")])
    assert np.isnan(out[0]) and out[1] == float("inf")


class LyingFloat(float):
    def __eq__(self, other):
        return True

    __hash__ = float.__hash__


class LyingArray(np.ndarray):
    def __eq__(self, other):
        return True


def test_lying_subclasses_are_not_data_and_become_handles():
    handles = []

    def make_handle(obj):
        handles.append(obj)
        return {"__t__": "handle", "id": len(handles), "type": type(obj).__name__}

    tree, blobs = wire.encode_value([LyingFloat(1.0), np.zeros(2).view(LyingArray)], make_handle)
    out = wire.decode(tree, blobs)
    assert all(isinstance(h, wire.Handle) for h in out) and len(handles) == 2


@pytest.mark.parametrize("tree", [
    {"__t__": "pickle", "v": "x"},
    {"__t__": "ndarray", "blob": 5},
    {"__t__": "dict", "k": [[1]], "v": [1]},
    {"__t__": "float", "v": "not a number"},
])
def test_malformed_trees_are_refused(tree):
    with pytest.raises(wire.WireError):
        wire.decode(tree, [])


def test_object_arrays_and_pickles_are_refused():
    buf = io.BytesIO()
    np.save(buf, np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(wire.WireError):
        wire.decode({"__t__": "ndarray", "blob": 0}, [buf.getvalue()])


def test_framing_roundtrip_over_a_pipe():
    r, w = os.pipe()
    wire.write_message(w, {"op": "x", "n": 3}, [b"abc", b""])
    msg, blobs = wire.read_message(r)
    assert msg == {"op": "x", "n": 3} and blobs == [b"abc", b""]
    os.close(w)
    with pytest.raises(EOFError):
        wire.read_message(r)


@pytest.mark.parametrize("dtype, shape, nbytes", [
    ("|O", [1], 8),  # objects are never data
    ("<f8", [3], 16),  # the shape and the bytes disagree
    ("<f8", [-1], 8),
    ("[('a', '<f8')]", [1], 8),
    ("not a dtype", [1], 8),
])
def test_arrays_with_object_dtypes_or_inconsistent_shapes_are_refused(dtype, shape, nbytes):
    with pytest.raises(wire.WireError):
        wire.decode({"__t__": "ndarray", "blob": 0, "dtype": dtype, "shape": shape}, [bytearray(nbytes)])


def test_arrays_of_every_plain_dtype_and_empty_ones_roundtrip_writable():
    for arr in (np.arange(6, dtype=np.int16).reshape(2, 3).T, np.array(["ab", "c"]), np.zeros((0, 4)),
                np.array(3.5), np.array([True, False]), np.arange(4, dtype=np.complex64)):
        out = _roundtrip(arr)
        assert type(out) is np.ndarray and out.dtype == arr.dtype and np.array_equal(out, arr)
        out[...] = out  # writable
    ten = _roundtrip(torch.arange(6, dtype=torch.bfloat16).reshape(2, 3)[:, 1:])
    assert ten.dtype == torch.bfloat16 and ten.tolist() == [[1, 2], [4, 5]]


# --- issue 13: the dtype sent is the dtype decoded, never a wider one


def _tensor_tree(dtype: str, n: int, torch_dtype: str) -> dict:
    return {"__t__": "tensor", "blob": 0, "dtype": dtype, "shape": [n], "torch_dtype": torch_dtype}


@pytest.mark.parametrize("dtype, claim", [("|b1", "complex128"), ("|u1", "float64"), ("<f4", "float64"),
                                          ("<f8", "bool"), ("<i8", "Tensor"), ("<f8", "int"), ("<U1", "float32")])
def test_a_tensor_whose_claimed_dtype_is_not_its_data_is_refused(dtype, claim):
    blob = bytearray(np.dtype(dtype).itemsize * 4)
    with pytest.raises(wire.WireError, match="dtype"):
        wire.decode(_tensor_tree(dtype, 4, claim), [blob])


def test_bfloat16_travels_as_float32_and_comes_back_bfloat16():
    out = _roundtrip(torch.tensor([1.5, -2.0], dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and out.tolist() == [1.5, -2.0]


def test_a_bool_array_of_other_bytes_than_0_and_1_is_refused():
    with pytest.raises(wire.WireError, match="bool"):
        wire.decode({"__t__": "ndarray", "blob": 0, "dtype": "|b1", "shape": [3]}, [bytearray(b"\x00\x02\x01")])


def test_one_blob_backs_one_array_and_is_not_copied():
    blob = bytearray(np.arange(4.0).tobytes())
    tree = {"__t__": "ndarray", "blob": 0, "dtype": "<f8", "shape": [4]}
    with pytest.raises(wire.WireError, match="twice"):
        wire.decode([tree, tree], [blob])
    arr = wire.decode(tree, [blob])
    assert arr.flags.writeable and np.shares_memory(arr, np.frombuffer(blob, np.uint8))


def test_decoded_strings_carry_no_lone_surrogates():
    out = wire.decode(["a\ud800b", {"__t__": "dict", "k": ["\udfff"], "v": [1]}], [])
    [key] = out[1]
    assert out[0][0] == "a" and out[0][-1] == "b" and set(out[0][1:-1]) == {"\ufffd"}
    assert set(key) == {"\ufffd"}
    assert out[0].encode("utf-8") and key.encode("utf-8")


def _handle_maker(handles):
    def make_handle(obj):
        handles.append(obj)
        return {"__t__": "handle", "id": len(handles), "type": type(obj).__name__}
    return make_handle


def test_structured_and_record_arrays_arrive_as_real_numpy_records():
    """Plain fields (numbers, text, dates, fixed sub-arrays), rebuilt field by
    field: an ndarray stays an ndarray, a recarray a recarray, one record a
    numpy.void / numpy.record."""
    a = np.zeros(3, dtype=[("x", "<f8"), ("name", "<U5"), ("pos", "<i4", (2,)), ("t", "<M8[s]")])
    a["x"], a["name"], a["pos"] = [0.5, np.nan, 3.0], ["ab", "cde", ""], [[1, 2], [3, 4], [5, 6]]
    r = a.view(np.recarray)
    out = _roundtrip([a, r, a[1], r[2], np.zeros((2, 0), dtype=[("u", "u1")])])
    assert [type(v) for v in out] == [np.ndarray, np.recarray, np.void, np.record, np.ndarray]
    assert out[0].dtype == a.dtype and np.array_equal(out[0]["x"], a["x"], equal_nan=True)
    assert out[0]["name"].tolist() == ["ab", "cde", ""] and out[1].pos.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert out[2]["name"] == "cde" and out[3].x == 3.0 and out[4].shape == (2, 0)
    assert out[0].flags.writeable


def test_records_with_object_or_nested_fields_stay_handles():
    handles = []
    nested = np.zeros(2, dtype=[("inner", [("a", "<f8")])])
    objects = np.array([(1, None)], dtype=[("a", "<i8"), ("o", "O")])
    tree, blobs = wire.encode_value([nested, objects], _handle_maker(handles))
    assert blobs == [] and all(isinstance(h, wire.Handle) for h in wire.decode(tree, blobs)) and len(handles) == 2


@pytest.mark.parametrize("change", [
    {"names": ["x", "x"]}, {"names": []}, {"names": [1]}, {"shape": [4]}, {"shape": [-1]}, {"kind": "pickle"},
    {"kind": "void"}, {"fields": [{"__t__": "npscalar", "blob": 0, "dtype": "<f8", "shape": []}]},
    {"fields": [{"__t__": "handle", "id": 1, "type": "x"}]},
])
def test_malformed_records_are_refused(change):
    tree = {"__t__": "records", "names": ["x"], "shape": [2], "kind": "array",
            "fields": [{"__t__": "ndarray", "blob": 0, "dtype": "<f8", "shape": [2]}]}
    with pytest.raises(wire.WireError):
        wire.decode({**tree, **change}, [bytearray(16)], handle_factory=lambda h: object())


def test_a_frame_without_columns_cannot_claim_an_unbounded_index():
    """Its rows are a range index the sandbox states: a test that lists it
    would materialize whatever length was claimed."""
    frame = {"__t__": "dataframe", "index": {"range": [0, 10 ** 15, 1], "name": None}, "columns": [], "data": []}
    with pytest.raises(wire.WireError, match="range index"):
        wire.decode(frame, [])
    ok = wire.decode({**frame, "index": {"range": [0, 3, 1], "name": None}}, [])
    assert ok.shape == (3, 0)


def test_a_blob_is_not_shared_by_two_columns_of_a_table():
    """Two fields (or columns) naming one blob would alias one buffer."""
    field = {"__t__": "ndarray", "blob": 0, "dtype": "<f8", "shape": [2]}
    with pytest.raises(wire.WireError, match="twice"):
        wire.decode({"__t__": "records", "names": ["x", "y"], "shape": [2], "kind": "array", "fields": [field, field]},
                    [bytearray(16)])


def test_a_datascience_table_arrives_as_a_real_table():
    from datascience import Table

    t = Table().with_columns("n", np.array([1, 2, 3]), "name", np.array(["a", "bb", "c"]),
                             "mixed", np.array([1, "x", 2.5], dtype=object), "f", [0.5, np.nan, 2.0])
    out = _roundtrip(t)
    assert type(out) is Table and out.labels == t.labels and out.num_rows == 3
    assert out.column("n").dtype == t.column("n").dtype and out.column("n").tolist() == [1, 2, 3]
    assert out.column("name").tolist() == ["a", "bb", "c"] and out.column("mixed").tolist() == [1, "x", 2.5]
    assert np.array_equal(out.column("f"), t.column("f"), equal_nan=True)
    assert type(_roundtrip(Table())) is Table and _roundtrip(Table()).num_columns == 0


def test_a_table_with_object_cells_stays_a_handle_and_a_forged_one_is_refused():
    from datascience import Table

    handles = []
    tree, blobs = wire.encode_value(Table().with_columns("o", np.array([object()], dtype=object)),
                                    _handle_maker(handles))
    assert isinstance(wire.decode(tree, blobs), wire.Handle) and blobs == []
    col = {"__t__": "ndarray", "blob": 0, "dtype": "<f8", "shape": [2]}
    for bad in ({"labels": ["a", "a"], "columns": [col, [1.0, 2.0]]}, {"labels": [1], "columns": [col]},
                {"labels": ["a", "b"], "columns": [col, [1.0]]},
                {"labels": ["a"], "columns": [[{"__t__": "handle", "id": 1, "type": "x"}, 1]]},
                {"labels": ["a"], "columns": [{"__t__": "ndarray", "blob": 0, "dtype": "<f8", "shape": [1, 2]}]}):
        with pytest.raises(wire.WireError):
            wire.decode({"__t__": "table", **bad}, [bytearray(16)], handle_factory=lambda h: object())
