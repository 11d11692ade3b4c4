"""safetensors-compatible files and atomic writes: round trips, a corpus of malformed files, fuzzing,
interoperability with the `safetensors` package (when installed), crash-safety of atomic writes."""
import json
import os
import stat
import struct
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neurodivergent.checkpointing import (
    HEADER_CAP,
    SafetensorsError,
    atomic_open,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    load_bytes,
    load_file,
    save_bytes,
    save_file,
)
from neurodivergent.checkpointing import atomic as atomic_mod
from neurodivergent.checkpointing import safetensors as st_mod

DTYPES = ["<f8", "<f4", "<f2", "<i8", "<i4", "<i2", "i1", "<u8", "<u4", "<u2", "u1", "?"]
SHAPES = [(), (0,), (3,), (2, 3), (0, 4), (2, 0, 3), (1, 1, 1, 1), (2, 3, 4)]


def _array(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    if dt.kind == "b":
        return (rng.random(n) < 0.5).reshape(shape)
    if dt.kind == "f":
        return (rng.standard_normal(n) * 100).astype(dt).reshape(shape)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, n, dtype=dt, endpoint=True).reshape(shape)


def _assert_same(a, b):
    assert a.dtype == b.dtype.newbyteorder("=") and a.shape == b.shape
    np.testing.assert_array_equal(a, b)


def _file(header, data=b"", n=None):
    """Hand-made file: header (dict -> compact JSON, or raw bytes), data section, optional lying length."""
    raw = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(raw) if n is None else n) + raw + data


def _load_both(b, tmp_path):
    """load_bytes and load_file must agree on bytes b: same result or the same SafetensorsError."""
    p = tmp_path / "x.safetensors"
    p.write_bytes(b)
    outcomes = []
    for load in (lambda: load_bytes(b), lambda: load_file(p)):
        try:
            outcomes.append(load())
        except SafetensorsError as exc:
            outcomes.append(exc)
    r1, r2 = outcomes
    if isinstance(r1, Exception):
        assert isinstance(r2, Exception) and str(r1) == str(r2)
        raise r1
    assert r1[1] == r2[1] and list(r1[0]) == list(r2[0])
    for k in r1[0]:
        _assert_same(r1[0][k], r2[0][k])
    return r1


# ------------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_all_dtypes_and_shapes(dtype, tmp_path):
    tensors = {f"t{i}": _array(dtype, s, i) for i, s in enumerate(SHAPES)}
    out, meta = load_bytes(save_bytes(tensors))
    assert meta == {}
    assert set(out) == set(tensors)
    for k, v in tensors.items():
        _assert_same(out[k], v)
    save_file(tensors, tmp_path / "f.safetensors")
    out2, _ = load_file(tmp_path / "f.safetensors")
    for k, v in tensors.items():
        _assert_same(out2[k], v)


def test_round_trip_mixed_with_metadata_and_layout(tmp_path):
    tensors = {
        "b": np.array([True, False]),
        "w.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
        "a": np.arange(3, dtype=np.int64),
        "h": np.ones(3, dtype=np.float16),
        "scalar": np.float64(2.5),  # numpy scalars are accepted as 0-d arrays
        "é-unicode": np.zeros((0,), np.uint8),
    }
    meta = {"format": "np", "epoch": "3", "ünïcode": "✓"}  # written with sorted keys
    b = save_bytes(tensors, meta)
    n = struct.unpack("<Q", b[:8])[0]
    assert n % 8 == 0  # padded with spaces
    header = json.loads(b[8 : 8 + n].decode())
    assert header["__metadata__"] == meta and list(header["__metadata__"]) == sorted(meta)
    # reference order: I64 before F64, F32, F16, U8 before BOOL; every tensor aligned to its item size
    order = [k for k in header if k != "__metadata__"]
    assert order == ["a", "scalar", "w.weight", "h", "é-unicode", "b"]
    for k in order:
        begin = header[k]["data_offsets"][0]
        assert (8 + n + begin) % np.dtype(tensors[k].dtype).itemsize == 0
    out, m = load_bytes(b)
    assert m == meta and out["scalar"].shape == () and out["scalar"][()] == 2.5
    save_file(tensors, tmp_path / "m.safetensors", meta)
    assert (tmp_path / "m.safetensors").read_bytes() == b


def test_byte_order_and_layout_are_normalised():
    big = np.arange(5, dtype=">i4")
    fortran = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    strided = np.arange(20, dtype=np.int16)[::3]
    out, _ = load_bytes(save_bytes({"big": big, "f": fortran, "s": strided}))
    _assert_same(out["big"], big.astype("<i4"))
    _assert_same(out["f"], fortran)
    _assert_same(out["s"], strided)
    assert save_bytes({"x": big}) == save_bytes({"x": big.astype("<i4")})


def test_loaded_arrays_are_independent_writeable_copies():
    src = bytearray(save_bytes({"x": np.arange(4, dtype=np.float32)}))
    out, _ = load_bytes(src)
    x = out["x"]
    assert x.flags.writeable and x.flags.c_contiguous and x.flags.aligned
    assert not np.shares_memory(x, np.frombuffer(src, np.uint8))
    src[-4:] = b"\0\0\0\0"
    x[0] = 42.0
    np.testing.assert_array_equal(x, [42.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(load_bytes(save_bytes({"x": np.arange(4, dtype=np.float32)}))[0]["x"], np.arange(4))


def test_bf16_is_read_as_float32():
    vals = np.array([1.0, -2.5, 3.140625, np.inf], dtype=np.float32)
    bf16 = (vals.view(np.uint32) >> 16).astype("<u2")
    b = _file({"x": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]}}, bf16.tobytes())
    out, _ = load_bytes(b)
    assert out["x"].dtype == np.float32
    np.testing.assert_array_equal(out["x"], vals.reshape(2, 2))


utf8_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        utf8_text.filter(lambda s: s and s != "__metadata__"),
        hnp.arrays(
            st.sampled_from([np.dtype(d) for d in DTYPES]),
            hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
        ),
        max_size=5,
    ),
    st.dictionaries(utf8_text, utf8_text, max_size=3),
)
def test_round_trip_property(tensors, meta):
    out, m = load_bytes(save_bytes(tensors, meta))
    assert m == meta and set(out) == set(tensors)
    for k, v in tensors.items():
        assert out[k].dtype == v.dtype.newbyteorder("=") and out[k].shape == v.shape
        assert out[k].tobytes() == v.astype(v.dtype.newbyteorder("=")).tobytes()  # bitwise, NaNs included


# ------------------------------------------------------------------------------------ writer errors
def test_writer_validation():
    with pytest.raises(TypeError, match="tensor names must be str"):
        save_bytes({1: np.zeros(1)})
    with pytest.raises(ValueError, match="non-empty"):
        save_bytes({"": np.zeros(1)})
    with pytest.raises(ValueError, match="reserved"):
        save_bytes({"__metadata__": np.zeros(1)})
    with pytest.raises(TypeError, match="tensor 'c' has dtype complex128"):
        save_bytes({"ok": np.zeros(1), "c": np.zeros(2, complex)})
    with pytest.raises(TypeError, match="tensor 'o' has dtype object"):
        save_bytes({"o": np.array([None])})
    with pytest.raises(TypeError, match="tensor 'l' must be a numpy array"):
        save_bytes({"l": [1.0, 2.0]})
    with pytest.raises(TypeError, match="metadata must map str -> str"):
        save_bytes({"x": np.zeros(1)}, {"epoch": 3})
    with pytest.raises(TypeError, match="tensors must be a dict"):
        save_bytes([("x", np.zeros(1))])
    with pytest.raises(ValueError, match="UTF-8"):
        save_bytes({"\ud800": np.zeros(1)})


def test_writer_failure_leaves_no_file(tmp_path):
    p = tmp_path / "w.safetensors"
    with pytest.raises(TypeError):
        save_file({"c": np.zeros(2, complex)}, p)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------ malformed corpus
GOOD = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
D8 = b"\0" * 8


def _entry(**kw):
    e = dict(GOOD)
    e.update(kw)
    return {"x": e}


MALFORMED = [
    ("empty", b"", "shorter than the 8-byte"),
    ("short", b"\x01\x02\x03", "shorter than the 8-byte"),
    ("cap", _file(b"{}", n=HEADER_CAP + 1), "exceeds the cap"),
    ("huge_len", _file(b"{}", n=2**64 - 1), "exceeds the cap"),
    ("len_past_end", _file(b"{}", n=1000), "larger than the rest of the file"),
    ("empty_header", _file(b""), "header is empty"),
    ("leading_space", _file(b" {}"), "does not start with"),
    ("not_utf8", _file(b'{"\xff":1}'), "not valid UTF-8"),
    ("not_json", _file(b"{not json}"), "not valid JSON"),
    ("extra_json", _file(b"{} []"), "not valid JSON"),
    ("deep", _file(b'{"a":' + b"[" * 200000 + b"]" * 200000 + b"}"), "not valid JSON"),
    ("big_int", _file(b'{"x":{"dtype":"F32","shape":[' + b"9" * 5000 + b'],"data_offsets":[0,8]}}', D8), "not valid JSON"),
    ("nan", _file(b'{"__metadata__":{"a":NaN}}'), "not JSON"),
    ("dup_tensor", _file(b'{"x":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"x":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}'), "'x' twice"),
    ("dup_field", _file(b'{"x":{"dtype":"U8","dtype":"U8","shape":[0],"data_offsets":[0,0]}}'), "'dtype' twice"),
    ("meta_int", _file({"__metadata__": {"a": 1}}), r"__metadata__\['a'\] must be a string"),
    ("meta_list", _file({"__metadata__": ["a"]}), "__metadata__ must be an object"),
    ("meta_null", _file({"__metadata__": None}), "__metadata__ must be an object"),
    ("meta_nested", _file({"__metadata__": {"a": {"b": "c"}}}), "must be a string"),
    ("entry_list", _file({"x": [1, 2]}), "entry must be an object"),
    ("empty_name", _file({"": GOOD}, D8), "empty name"),
    ("missing_field", _file({"x": {"dtype": "F32", "shape": [2]}}, D8), "missing field"),
    ("extra_field", _file(_entry(extra=1), D8), "unknown field"),
    ("unknown_dtype", _file(_entry(dtype="F128"), D8), "unknown dtype 'F128'"),
    ("f8_dtype", _file(_entry(dtype="F8_E4M3", shape=[8]), D8), "not supported"),
    ("dtype_lower", _file(_entry(dtype="f32"), D8), "unknown dtype"),
    ("dtype_int", _file(_entry(dtype=4), D8), "dtype must be a string"),
    ("shape_str", _file(_entry(shape="2"), D8), "shape must be a list"),
    ("shape_neg", _file(_entry(shape=[-2]), D8), "shape must be a list of non-negative"),
    ("shape_float", _file(_entry(shape=[2.0]), D8), "shape must be a list"),
    ("shape_bool", _file(_entry(shape=[True, True]), D8), "shape must be a list"),
    ("shape_null", _file(_entry(shape=None), D8), "shape must be a list"),
    ("shape_ndim", _file(_entry(shape=[1] * 40), D8), "dimensions"),
    ("shape_huge_empty", _file(_entry(shape=[0, 2**40, 2**40], data_offsets=[0, 0])), "too large"),
    ("offs_one", _file(_entry(data_offsets=[8]), D8), "data_offsets must be"),
    ("offs_three", _file(_entry(data_offsets=[0, 4, 8]), D8), "data_offsets must be"),
    ("offs_str", _file(_entry(data_offsets=[0, "8"]), D8), "data_offsets must be"),
    ("offs_neg", _file(_entry(data_offsets=[-8, 0]), D8), "data_offsets must be"),
    ("offs_bool", _file(_entry(data_offsets=[False, 8]), D8), "data_offsets must be"),
    ("offs_float", _file(_entry(data_offsets=[0, 8.0]), D8), "data_offsets must be"),
    ("begin_gt_end", _file(_entry(data_offsets=[8, 0]), D8), "begin 8 > end 0"),
    ("count_mismatch", _file(_entry(shape=[3]), D8), "needs 12"),
    ("past_end", _file(_entry(shape=[4], data_offsets=[0, 16]), D8), "past the data section"),
    ("lying_huge", _file(_entry(shape=[2**30, 2**30], data_offsets=[0, 2**62]), D8), "past the data section"),
    ("overlap", _file({"a": GOOD, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12), "overlaps"),
    ("overlap_empty", _file({"a": GOOD, "b": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}}, D8), "overlaps"),
    ("gap", _file({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}, b"\0" * 12), "gap"),
    ("start_gap", _file(_entry(shape=[1], data_offsets=[4, 8]), D8), "gap"),
    ("trailing", _file(_entry(shape=[1], data_offsets=[0, 4]), D8), "4 trailing byte"),
    ("trailing_no_tensors", _file(b"{}", D8), "8 trailing byte"),
    ("bool_bytes", _file({"b": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, b"\x01\x02"), "other than 0 and 1"),
]


@pytest.mark.parametrize("name,data,message", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_files_are_rejected(name, data, message, tmp_path):
    with pytest.raises(SafetensorsError, match=message):
        _load_both(data, tmp_path)


def test_minimal_valid_files(tmp_path):
    assert _load_both(_file(b"{}"), tmp_path) == ({}, {})
    assert _load_both(_file(b"{}    "), tmp_path) == ({}, {})  # padding without tensors
    out, meta = _load_both(_file({"__metadata__": {}, "x": GOOD}, D8), tmp_path)  # unpadded header
    assert meta == {} and out["x"].tolist() == [0.0, 0.0]
    assert issubclass(SafetensorsError, ValueError)


def test_load_file_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_file(tmp_path / "nope.safetensors")


# ------------------------------------------------------------------------------------ fuzzing
VALID = save_bytes(
    {
        "w": np.arange(12, dtype=np.float32).reshape(3, 4),
        "b": np.array([True, False, True]),
        "i": np.arange(5, dtype=np.int64),
        "e": np.zeros((0, 2), np.float16),
        "s": np.array(7, dtype=np.uint8),
    },
    {"epoch": "4", "model": "lstm"},
)
HEADER_END = 8 + struct.unpack("<Q", VALID[:8])[0]


def _try_load(b):
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "f.safetensors")
        with open(p, "wb") as f:
            f.write(b)
        for load in (lambda: load_bytes(b), lambda: load_file(p)):
            try:
                tensors, meta = load()
            except SafetensorsError:
                continue
            assert isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())
            assert all(isinstance(a, np.ndarray) for a in tensors.values())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.one_of(st.integers(0, HEADER_END - 1), st.integers(0, len(VALID) - 1)), st.integers(0, 255)),
        min_size=1,
        max_size=4,
    ),
    st.one_of(st.none(), st.integers(0, len(VALID))),
)
def test_corrupted_files_load_or_raise_safetensors_error(flips, cut):
    b = bytearray(VALID)
    for i, v in flips:
        b[i] = v
    if cut is not None:
        b = b[:cut]
    _try_load(bytes(b))


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=4))
json_any = st.recursive(json_leaf, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=4), c, max_size=3)), max_leaves=8)
entry = st.fixed_dictionaries(
    {
        "dtype": st.one_of(st.sampled_from(["F32", "F64", "BF16", "BOOL", "U8", "I16", "F8_E5M2", "X"]), json_any),
        "shape": st.one_of(st.lists(st.integers(-2, 5), max_size=3), json_any),
        "data_offsets": st.one_of(st.lists(st.integers(-2, 40), min_size=2, max_size=2), json_any),
    },
    optional={"extra": json_any},
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.one_of(st.text(max_size=3), st.just("__metadata__")), st.one_of(entry, json_any), max_size=4),
    st.binary(max_size=48),
)
def test_structured_fuzz_load_or_raise_safetensors_error(header, data):
    _try_load(_file(header, data))


# ------------------------------------------------------------------------------------ interoperability
def test_interop_with_safetensors_package(tmp_path):
    stnp = pytest.importorskip("safetensors.numpy")
    safetensors = pytest.importorskip("safetensors")
    tensors = {f"{np.dtype(d).name}_{i}": _array(d, s, i) for d in DTYPES for i, s in enumerate([(), (0,), (2, 3)])}
    meta = {"epoch": "7", "note": "ünïcode"}
    # ours -> theirs
    ours = tmp_path / "ours.safetensors"
    save_file(tensors, ours, meta)
    theirs_view = stnp.load_file(str(ours))
    assert set(theirs_view) == set(tensors)
    for k, v in tensors.items():
        _assert_same(theirs_view[k], v)
    with safetensors.safe_open(str(ours), framework="np") as f:
        assert f.metadata() == meta
    assert stnp.load(save_bytes(tensors)).keys() == tensors.keys()
    # theirs -> ours
    theirs = tmp_path / "theirs.safetensors"
    stnp.save_file(tensors, str(theirs), metadata=meta)
    out, m = load_file(theirs)
    assert m == meta
    for k, v in tensors.items():
        _assert_same(out[k], v)
    out2, _ = load_bytes(stnp.save(tensors))
    assert out2.keys() == tensors.keys()
    # identical layout rules: the same bytes on both sides (one metadata key: the reference writer's
    # order of several keys is not fixed)
    assert stnp.save(tensors, metadata={"k": "v"}) == save_bytes(tensors, {"k": "v"})
    assert stnp.save(tensors) == save_bytes(tensors)


# ------------------------------------------------------------------------------------ atomic writes
def test_atomic_write_bytes_creates_and_replaces(tmp_path):
    p = tmp_path / "a.bin"
    atomic_write_bytes(p, b"old")
    assert p.read_bytes() == b"old"
    atomic_write_bytes(str(p), b"new")
    assert p.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["a.bin"]
    with pytest.raises(TypeError, match="bytes-like"):
        atomic_write_bytes(p, "text")


def test_atomic_open_exception_midway_keeps_old(tmp_path):
    p = tmp_path / "ckpt.safetensors"
    p.write_bytes(b"old content")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_open(p) as f:
            f.write(b"half of the new con")
            raise RuntimeError("boom")
    assert p.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(tmp_path / "new.bin") as f:
            f.write(b"x")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]


class _FailingWriter:
    def __init__(self, real, fail_on):
        self.real, self.fail_on, self.calls = real, fail_on, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.fail_on:
            raise OSError(28, "No space left on device")
        return self.real(*args, **kwargs)


def test_save_file_failing_write_keeps_old_file(tmp_path, monkeypatch):
    p = tmp_path / "model.safetensors"
    old = {"w": np.arange(4, dtype=np.float32)}
    save_file(old, p)
    before = p.read_bytes()
    monkeypatch.setattr(st_mod, "_raw", _FailingWriter(st_mod._raw, fail_on=2))
    with pytest.raises(OSError, match="No space"):
        save_file({"a": np.ones(3), "b": np.zeros(5)}, p)
    assert p.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.safetensors"]
    _assert_same(load_file(p)[0]["w"], old["w"])


@pytest.mark.parametrize("target", ["fsync", "replace", "chmod"])
def test_failing_fsync_replace_or_chmod_keeps_old(tmp_path, monkeypatch, target):
    p = tmp_path / "state.json"
    p.write_text("old")
    monkeypatch.setattr(atomic_mod.os, target, _FailingWriter(getattr(os, target), fail_on=1))
    with pytest.raises(OSError):
        atomic_write_text(p, "new")
    monkeypatch.undo()
    assert p.read_text() == "old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_file_and_directory_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        return real(fd)

    monkeypatch.setattr(atomic_mod.os, "fsync", spy)
    atomic_write_bytes(tmp_path / "x", b"data")
    assert synced == [False, True]  # the file, then its directory after the rename


def test_permissions(tmp_path):
    p = tmp_path / "perm.bin"
    atomic_write_bytes(p, b"1")
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o666 & ~mask
    os.chmod(p, 0o640)
    atomic_write_bytes(p, b"2")
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o640


def test_atomic_text_and_json(tmp_path):
    t = tmp_path / "t.txt"
    atomic_write_text(t, "héllo\nworld\r\n")
    assert t.read_bytes() == "héllo\nworld\r\n".encode()
    with atomic_open(t, "w") as f:
        f.write("via text mode")
    assert t.read_text() == "via text mode"
    j = tmp_path / "c.json"
    atomic_write_json(j, {"b": 1, "a": [1.5, "x"], "c": {"z": None, "y": True}})
    text = j.read_text()
    assert text == json.dumps({"a": [1.5, "x"], "b": 1, "c": {"y": True, "z": None}}, indent=2) + "\n"
    with pytest.raises(ValueError, match="NaN/inf are not allowed"):
        atomic_write_json(j, {"loss": float("nan")})
    with pytest.raises(ValueError, match="NaN/inf"):
        atomic_write_json(tmp_path / "new.json", [float("inf")])
    with pytest.raises(TypeError, match="cannot write"):
        atomic_write_json(j, {"x": object()})
    assert json.loads(j.read_text())["b"] == 1
    assert sorted(os.listdir(tmp_path)) == ["c.json", "t.txt"]
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(t, "ab"):
            pass
