"""Checkpoint files and strategies: round trips for every model, interoperability with the `safetensors`
package, a corpus of malformed files (and hypothesis-generated corruptions) rejected with typed errors,
keep_last_n / Latest / BestValidationLoss keeping exactly the right files, compression, manual
save_checkpoint / load_checkpoint / resume_training."""
import gzip
import json
import lzma
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurodivergent import load_checkpoint, load_model
from neurodivergent.checkpointing import (CheckpointConfig, CheckpointCorruptError, CheckpointError,
                                          CheckpointStrategy, CheckpointVersionError, SafetensorsError, SaveFrequency,
                                          latest_checkpoint, list_checkpoints, read_file, read_metadata, write_file)
from neurodivergent.checkpointing.safetensors import save_bytes
from neurodivergent.data.datasets import load_dataset
from neurodivergent.models import base as model_base
from neurodivergent.models.base import NotFittedError
from neurodivergent.models.lstm import LSTM
from neurodivergent.models.mlp import MLP, MLPConfig
from neurodivergent.training import ReduceLROnPlateau, TrainingConfig

model_base._import_builtin_models()
MODEL_NAMES = sorted(model_base._MODELS)


@pytest.fixture(scope="module")
def data():
    return load_dataset("us_macro_quarterly")


def make(name):
    cls = model_base._MODELS[name]
    c = cls.config_class()
    for field, value in (("input_size", 16), ("horizon", 4), ("hidden_size", 8)):
        if hasattr(c, f"with_{field}"):
            c = getattr(c, f"with_{field}")(value)
    return cls(c)


def small():
    return MLP(MLPConfig().with_input_size(8).with_hidden_size(16).with_horizon(4))


def cfg(epochs=3, **kw):
    c = (TrainingConfig().with_max_epochs(epochs).with_batch_size(64).with_seed(2).with_verbose(False)
         .with_validation_split(0.2))
    return c


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory):
    """A fitted MLP, its checkpoint and model file."""
    d = tmp_path_factory.mktemp("fitted")
    m = small()
    m.fit_with_config(data, cfg(2).with_early_stopping(patience=3).with_callback(ReduceLROnPlateau(patience=1)))
    m.save_checkpoint(str(d / "m.ckpt"))
    m.save(str(d / "m.safetensors"))
    return m, d


# ------------------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_round_trip_for_every_model(name, data, tmp_path):
    m = make(name)
    m.fit_with_config(data, cfg(1).with_max_steps(6))
    want = m.predict(data).values(m.alias)
    m.save(str(tmp_path / "model.safetensors"))
    cls = type(m)
    loaded_models = [load_model(str(tmp_path / "model.safetensors")), cls.load(str(tmp_path / "model.safetensors"))]
    # every model trains on the shared loop (training/trainer.py) and carries a training state
    assert m._train_state is not None
    m.save_checkpoint(str(tmp_path / "ckpt.safetensors"))
    loaded_models += [load_checkpoint(str(tmp_path / "ckpt.safetensors")),
                      cls.load_checkpoint(str(tmp_path / "ckpt.safetensors")),
                      load_model(str(tmp_path / "ckpt.safetensors"))]
    for loaded in loaded_models:
        assert type(loaded) is cls
        np.testing.assert_array_equal(loaded.predict(data).values(m.alias), want)
        np.testing.assert_array_equal(loaded.params.data, m.params.data)
        assert loaded.training_logs.step_losses == m.training_logs.step_losses
    # a checkpoint written from a loaded checkpoint is the same file (minus nothing)
    again = load_checkpoint(str(tmp_path / "ckpt.safetensors"))
    again.save_checkpoint(str(tmp_path / "ckpt2.safetensors"))
    a, b = read_file(str(tmp_path / "ckpt.safetensors")), read_file(str(tmp_path / "ckpt2.safetensors"))
    assert a[0].keys() == b[0].keys() and all(a[0][k].tobytes() == b[0][k].tobytes() for k in a[0])
    assert json.loads(a[1]["training_state"]) == json.loads(b[1]["training_state"])


def test_resume_after_fit_trains_further_exactly_like_a_longer_run(data, tmp_path):
    c = cfg(2).with_callback(ReduceLROnPlateau(patience=1, factor=0.5)).with_early_stopping(patience=4)
    m = small()
    m.fit_with_config(data, c)
    m.save_checkpoint(str(tmp_path / "after2.ckpt"))
    longer = small()
    want = longer.fit_with_config(data, c.with_max_epochs(4))
    resumed = load_checkpoint(str(tmp_path / "after2.ckpt"))
    got = resumed.resume_training(data, c.with_max_epochs(4))
    assert got.step_losses == want.step_losses and got.history["validation_loss"] == want.history["validation_loss"]
    np.testing.assert_array_equal(resumed.params.data, longer.params.data)
    # in-process as well, without any file
    m.resume_training(data, c.with_max_epochs(4))
    np.testing.assert_array_equal(m.params.data, longer.params.data)


def test_manual_checkpoints_during_training(data, tmp_path):
    from neurodivergent.training import Callback

    class Save(Callback):
        def on_batch_end(self, step, logs):
            if step == 9:
                self.model.save_checkpoint(str(tmp_path / "step10.ckpt"))
                assert os.path.exists(tmp_path / "step10.ckpt")  # written at once

        def on_epoch_end(self, epoch, logs):
            if epoch == 0:
                self.model.save_checkpoint(str(tmp_path / "epoch1.ckpt"))  # once the epoch is complete

        def on_train_end(self, logs):
            self.model.save_checkpoint(str(tmp_path / "end.ckpt"))

    c = cfg(3).with_callback(Save())
    m = small()
    want = m.fit_with_config(data, c)
    end = read_file(str(tmp_path / "end.ckpt"))
    m.save_checkpoint(str(tmp_path / "after.ckpt"))
    after = read_file(str(tmp_path / "after.ckpt"))
    assert end[0].keys() == after[0].keys() and all(end[0][k].tobytes() == after[0][k].tobytes() for k in end[0])
    for name, step in (("step10.ckpt", 10), ("epoch1.ckpt", None)):
        r = load_checkpoint(str(tmp_path / name))
        pos = r._train_state[1]["position"]
        if step is not None:
            assert pos["step"] == step and pos["in_epoch"]
        else:
            assert pos["epoch"] == 1 and not pos["in_epoch"]
        got = r.resume_training(data, c)
        assert got.step_losses == want.step_losses
        np.testing.assert_array_equal(r.params.data, m.params.data)


def test_manual_api_errors(data, fitted, tmp_path):
    m, d = fitted
    with pytest.raises(NotFittedError, match="no training state"):
        small().save_checkpoint(str(tmp_path / "x.ckpt"))
    with pytest.raises(NotFittedError, match="no training state"):
        load_model(str(d / "m.safetensors")).resume_training(data)
    with pytest.raises(TypeError, match="not a LSTM"):
        LSTM.load_checkpoint(str(d / "m.ckpt"))
    with pytest.raises(CheckpointError, match="a saved model has no training state"):
        load_checkpoint(str(d / "m.safetensors"))
    r = load_checkpoint(str(d / "m.ckpt"))
    with pytest.raises(ValueError, match="batch_size"):
        r.resume_training(data, r.training_config.with_batch_size(16))
    with pytest.raises(ValueError, match="different data"):
        r.resume_training(data.subset(list(data.ids[:9])))
    freed = load_checkpoint(str(d / "m.ckpt"))
    freed.discard_training_state()
    with pytest.raises(NotFittedError, match="no training state"):
        freed.save_checkpoint(str(tmp_path / "y.ckpt"))
    np.testing.assert_array_equal(freed.predict(data).values("MLP"), m.predict(data).values("MLP"))
    # limits may change; the same config resumes
    r.resume_training(data, r.training_config.with_max_epochs(3).with_verbose(False))
    assert len(r.training_logs) == 3


# ------------------------------------------------------------------------------------------ strategies
def names(d):
    return sorted(os.listdir(d), key=lambda n: (len(n), n))


def test_keep_last_n_and_latest_keep_exactly_the_right_files(data, tmp_path):
    every = CheckpointConfig().with_save_directory(str(tmp_path / "every")).with_keep_last_n(2)
    small().fit_with_config(data, cfg(5).with_checkpointing(every))
    assert names(tmp_path / "every") == ["mlp_epoch_4.safetensors", "mlp_epoch_5.safetensors"]
    steps = every.with_save_directory(str(tmp_path / "steps")).with_keep_last_n(3).with_save_frequency(
        SaveFrequency.EveryNSteps(4))
    logs = small().fit_with_config(data, cfg(2).with_checkpointing(steps))
    n = len(logs.step_losses)
    last = [s for s in range(4, n + 1, 4)][-3:]
    assert names(tmp_path / "steps") == [f"mlp_step_{s}.safetensors" for s in last]
    latest = CheckpointConfig().with_save_directory(str(tmp_path / "latest")).with_strategy(CheckpointStrategy.Latest)
    small().fit_with_config(data, cfg(3).with_checkpointing(latest))
    assert names(tmp_path / "latest") == ["mlp_epoch_3.safetensors"]
    with pytest.raises(ValueError, match="contradicts CheckpointStrategy.Latest"):
        latest.with_keep_last_n(3)
    # the old shorthand: every N epochs into checkpoint_dir, all kept
    small().fit_with_config(data, cfg(4).with_checkpoint_every(2).with_checkpoint_dir(str(tmp_path / "old")))
    assert names(tmp_path / "old") == ["mlp_epoch_2.safetensors", "mlp_epoch_4.safetensors"]
    with pytest.raises(ValueError, match="both set"):
        cfg().with_checkpoint_every(2).with_checkpointing(every)


def test_best_validation_loss_strategy(data, tmp_path):
    from neurodivergent.training import Optimizer, SGDConfig

    ck = (CheckpointConfig().with_save_directory(str(tmp_path)).with_strategy(CheckpointStrategy.BestValidationLoss)
          .with_keep_last_n(2))
    # a noisy run (large SGD steps) whose validation loss goes up and down
    c = (cfg(10).with_optimizer(Optimizer.SGD(SGDConfig().with_momentum(0.9))).with_learning_rate(0.2)
         .with_checkpointing(ck))
    logs = small().fit_with_config(data, c)
    val = logs.history["validation_loss"]
    improved, best = [], np.inf
    for e, v in enumerate(val, start=1):
        if v < best:
            best = v
            improved.append(e)
    assert len(improved) < len(val), "the run must have epochs without improvement for this test to mean anything"
    assert names(tmp_path) == [f"mlp_best_epoch_{e}.safetensors" for e in improved[-2:]]
    newest = latest_checkpoint(tmp_path)
    assert newest.endswith(f"mlp_best_epoch_{improved[-1]}.safetensors")
    r = load_checkpoint(newest)
    assert r.training_logs.history["validation_loss"][-1] == min(val)


def test_compression_and_metadata(data, tmp_path, fitted):
    import safetensors.numpy as stnp

    for comp, suffix, opener in (("gzip", ".safetensors.gz", gzip.open), ("lzma", ".safetensors.xz", lzma.open)):
        d = tmp_path / comp
        ck = CheckpointConfig().with_save_directory(str(d)).with_compression(comp if comp == "lzma" else True)
        m = small()
        m.fit_with_config(data, cfg(2).with_checkpointing(ck))
        assert names(d) == [f"mlp_epoch_1{suffix}", f"mlp_epoch_2{suffix}"]
        r = load_checkpoint(str(d / f"mlp_epoch_2{suffix}"))
        np.testing.assert_array_equal(r.params.data, m.params.data)
        with opener(d / f"mlp_epoch_2{suffix}", "rb") as f:  # the uncompressed form is plain safetensors
            raw = f.read()
        plain = stnp.load(raw)
        ours, meta = read_file(str(d / f"mlp_epoch_2{suffix}"))
        assert plain.keys() == ours.keys() and all(plain[k].tobytes() == ours[k].tobytes() for k in ours)
        assert read_metadata(str(d / f"mlp_epoch_2{suffix}")) == meta
        md = json.loads(meta["training_metadata"])
        assert md["metrics"]["epoch"] == 2 and md["config"]["max_epochs"] == 2
    d = tmp_path / "nometa"
    small().fit_with_config(data, cfg(1).with_checkpointing(CheckpointConfig().with_save_directory(str(d))
                                                            .with_metadata(False)))
    meta = read_metadata(str(d / "mlp_epoch_1.safetensors"))
    assert "training_metadata" not in meta and "training_state" in meta
    # manual saves pick the compression from the suffix
    m, _ = fitted
    m.save_checkpoint(str(tmp_path / "m.ckpt.gz"))
    assert (tmp_path / "m.ckpt.gz").read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(load_checkpoint(str(tmp_path / "m.ckpt.gz")).params.data, m.params.data)


def test_checkpoint_config_round_trips_and_validates():
    c = (CheckpointConfig().with_save_directory("ck").with_strategy(CheckpointStrategy.BestValidationLoss)
         .with_save_frequency(SaveFrequency.EveryNEpochs(10)).with_keep_last_n(5).with_compression(True)
         .with_metadata(True))
    assert c.compression == "gzip" and repr(c.save_frequency) == "SaveFrequency.EveryNEpochs(10)"
    t = TrainingConfig().with_checkpointing(c)
    assert TrainingConfig.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    with pytest.raises(ValueError, match="compression"):
        c.with_compression("zip")
    with pytest.raises(TypeError, match="save_frequency"):
        c.with_save_frequency(10)
    with pytest.raises(ValueError, match="n must be >= 1"):
        SaveFrequency.EveryNSteps(0)
    with pytest.raises(ValueError, match="strategy"):
        c.with_strategy("sometimes")
    with pytest.raises(TypeError, match="checkpointing"):
        TrainingConfig().with_checkpointing({"save_directory": "x"})


# ------------------------------------------------------------------------------------------ interop
def test_files_interoperate_with_the_safetensors_package(fitted, tmp_path, data):
    import safetensors
    import safetensors.numpy as stnp

    m, d = fitted
    ours, meta = read_file(str(d / "m.ckpt"))
    theirs = stnp.load_file(str(d / "m.ckpt"))
    assert theirs.keys() == ours.keys() and all(theirs[k].tobytes() == ours[k].tobytes() for k in ours)
    with safetensors.safe_open(str(d / "m.ckpt"), framework="numpy") as f:
        assert f.metadata() == meta
    # a checkpoint written by the safetensors package (same tensors and metadata) loads and resumes
    stnp.save_file(ours, str(tmp_path / "theirs.ckpt"), metadata=meta)
    r = load_checkpoint(str(tmp_path / "theirs.ckpt"))
    np.testing.assert_array_equal(r.params.data, m.params.data)
    r.resume_training(data, r.training_config.with_max_epochs(3))
    # and a plain tensor file of theirs reads with our reader
    stnp.save_file({"a": np.arange(6, dtype=np.float32).reshape(2, 3)}, str(tmp_path / "plain.safetensors"),
                   metadata={"k": "v"})
    t, md = read_file(str(tmp_path / "plain.safetensors"))
    assert md == {"k": "v"} and t["a"].tolist() == [[0, 1, 2], [3, 4, 5]]


# ------------------------------------------------------------------------------------------ malformed files
def _rewrite(path, out, change_meta=None, change_tensors=None, keep_sha=True):
    tensors, meta = read_file(path)
    if change_tensors:
        change_tensors(tensors)
    if change_meta:
        change_meta(meta)
    if keep_sha:
        out.write_bytes(save_bytes(tensors, meta))
    else:
        write_file(str(out), tensors, meta)


def test_malformed_checkpoints_are_rejected_with_typed_errors(fitted, tmp_path):
    m, d = fitted
    good = d / "m.ckpt"
    raw = good.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    cases = {}
    cases["empty"] = (b"", SafetensorsError)
    cases["short length"] = (raw[:5], SafetensorsError)
    cases["truncated header"] = (raw[: 8 + n // 2], SafetensorsError)
    cases["truncated data"] = (raw[:-3], SafetensorsError)
    cases["trailing bytes"] = (raw + b"\0" * 8, SafetensorsError)
    cases["huge header length"] = ((2**40).to_bytes(8, "little") + raw[8:], SafetensorsError)
    flipped = bytearray(raw)
    flipped[len(raw) - 5] ^= 0x40  # one bit of a tensor
    cases["bit flip in data"] = (bytes(flipped), CheckpointCorruptError)
    cases["gzip truncated"] = (gzip.compress(raw, mtime=0)[:-20], CheckpointCorruptError)
    cases["gzip of garbage"] = (gzip.compress(b"\x10\0\0\0\0\0\0\0{}", mtime=0), SafetensorsError)
    cases["xz truncated"] = (lzma.compress(raw)[:200], CheckpointCorruptError)
    for name, (content, err) in cases.items():
        p = tmp_path / "bad.ckpt"
        p.write_bytes(content)
        with pytest.raises(err):
            load_checkpoint(str(p))
        with pytest.raises(ValueError):
            load_model(str(p))

    def rejects(err, match, **kw):
        p = tmp_path / "bad2.ckpt"
        _rewrite(str(good), p, **kw)
        with pytest.raises(err, match=match):
            load_checkpoint(str(p))

    # edited metadata with the old checksum
    rejects(CheckpointCorruptError, "checksum", change_meta=lambda md: md.update(model_class="LSTM"))
    rejects(CheckpointCorruptError, "checksum",
            change_tensors=lambda t: t.update({"layers.0.bias": t["layers.0.bias"] + 1}))
    # consistent files (fresh checksum) that are still wrong
    rejects(CheckpointVersionError, "upgrade", change_meta=lambda md: md.update(format_version="2"), keep_sha=False)
    rejects(CheckpointError, "unknown model class", change_meta=lambda md: md.update(model_class="os.system"),
            keep_sha=False)
    rejects(CheckpointError, "not a neurodivergent", change_meta=lambda md: md.update(format="pickle"), keep_sha=False)
    rejects(CheckpointError, "training state is missing", change_meta=lambda md: md.pop("training_state"),
            keep_sha=False)
    rejects(CheckpointError, "damaged training state", keep_sha=False, change_meta=lambda md: md.update(
        training_state=json.dumps({**json.loads(md["training_state"]), "position": {"epoch": -1}})))
    rejects(CheckpointError, "parameter", change_tensors=lambda t: t.pop("layers.0.bias"), keep_sha=False)
    rejects(CheckpointError, "NaN", keep_sha=False,
            change_tensors=lambda t: t.update({"layers.0.bias": t["layers.0.bias"] * np.nan}))
    rejects(CheckpointError, "logs/step_losses", change_tensors=lambda t: t.pop("logs/step_losses"), keep_sha=False)
    # a model file from a newer version is refused by load_model with a clear message
    p = tmp_path / "new.safetensors"
    _rewrite(str(d / "m.safetensors"), p, change_meta=lambda md: md.update(format_version="7",
                                                                           library_version="9.0"), keep_sha=False)
    with pytest.raises(CheckpointVersionError, match="written by neurodivergent 9.0 in format version 7"):
        load_model(str(p))


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("fuzz")
    m = MLP(MLPConfig().with_input_size(4).with_hidden_size(4).with_horizon(2))
    m.fit_with_config(data, cfg(1).with_max_steps(2))
    m.save_checkpoint(str(d / "c.ckpt"))
    return (d / "c.ckpt").read_bytes(), m.params.data.copy()


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.data())
def test_random_corruptions_never_crash(small_ckpt, tmp_path, data):
    raw, params = small_ckpt
    kind = data.draw(st.sampled_from(["flip", "truncate", "insert", "overwrite", "gzip-flip"]))
    b = bytearray(raw)
    if kind == "flip":
        i = data.draw(st.integers(0, len(b) - 1))
        b[i] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "truncate":
        b = b[: data.draw(st.integers(0, len(b) - 1))]
    elif kind == "insert":
        i = data.draw(st.integers(0, len(b)))
        b[i:i] = data.draw(st.binary(min_size=1, max_size=16))
    elif kind == "overwrite":
        i = data.draw(st.integers(0, len(b) - 1))
        chunk = data.draw(st.binary(min_size=1, max_size=32))
        b[i:i + len(chunk)] = chunk
    else:
        z = bytearray(gzip.compress(raw, mtime=0))
        i = data.draw(st.integers(0, len(z) - 1))
        z[i] ^= 1 << data.draw(st.integers(0, 7))
        b = z
    p = tmp_path / "fuzz.ckpt"
    p.write_bytes(bytes(b))
    try:
        m = load_checkpoint(str(p))
    except (CheckpointError, SafetensorsError):
        return
    # accepted: then nothing that matters changed (e.g. a flip in the header's padding spaces was
    # undone by JSON whitespace rules, or a gzip header flag)
    np.testing.assert_array_equal(m.params.data, params)


def test_list_and_latest_checkpoints(tmp_path, data):
    assert latest_checkpoint(tmp_path) is None
    ck = CheckpointConfig().with_save_directory(str(tmp_path)).with_save_frequency(SaveFrequency.EveryNSteps(10))
    logs = small().fit_with_config(data, cfg(1).with_checkpointing(ck))
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    (tmp_path / "broken.safetensors").write_bytes(b"\x01")
    found = list_checkpoints(tmp_path)
    assert [s for _, s, _ in found] == list(range(10, len(logs.step_losses) + 1, 10))
    assert latest_checkpoint(tmp_path) == found[-1][0]


def test_a_run_removes_what_a_killed_writer_left_in_its_directory(tmp_path, data):
    (tmp_path / ".mlp_epoch_1.safetensors.k3j2h1.tmp").write_bytes(b"half a checkpoint")
    (tmp_path / ".someone_else.txt.abc.tmp").write_bytes(b"not ours")
    small().fit_with_config(data, cfg(1).with_checkpointing(CheckpointConfig().with_save_directory(str(tmp_path))))
    assert sorted(os.listdir(tmp_path)) == [".someone_else.txt.abc.tmp", "mlp_epoch_1.safetensors"]
