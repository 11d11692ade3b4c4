"""Fault tolerance: SIGKILL while saving, graceful SIGTERM, retries from the last good state, the
health watchdog, signal handlers installed only during training."""
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import neurodivergent
from neurodivergent import load_checkpoint
from neurodivergent.checkpointing import CheckpointConfig, SaveFrequency, list_checkpoints
from neurodivergent.checkpointing.atomic import remove_stale_temporaries, unnamed_temporaries_supported
from neurodivergent.data.datasets import load_dataset
from neurodivergent.models.mlp import MLP, MLPConfig
from neurodivergent.training import Callback, TrainingConfig, TrainingDivergedError
from neurodivergent.training.fault_tolerance import FaultTolerantTraining, TrainingFailedError

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "checkpoint_worker.py")


def worker_env():
    env = dict(os.environ)
    # the children import the same neurodivergent as this process (the source tree with a dev build, or
    # the installed package in CI, whose source tree has no compiled _core)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(os.path.abspath(neurodivergent.__file__))),
                                         env.get("PYTHONPATH", "")])
    env["ND_NUM_THREADS"] = str(neurodivergent.get_num_threads())
    return env


@pytest.fixture(scope="module")
def data():
    return load_dataset("us_macro_quarterly")


def small():
    return MLP(MLPConfig().with_input_size(8).with_hidden_size(16).with_horizon(4))


def base_config(epochs=3):
    return (TrainingConfig().with_max_epochs(epochs).with_batch_size(64).with_seed(3).with_verbose(False)
            .with_validation_split(0.2).with_dropout(0.1))


# ------------------------------------------------------------------------------------------ SIGKILL
def test_sigkill_while_saving_leaves_a_loadable_checkpoint_and_no_temporaries(tmp_path):
    """A writer saving a checkpoint after every step (keep_last_n=2) is killed at random moments; each
    time the directory holds only complete, loadable checkpoints (the previous or the new one)."""
    rng = random.Random(1234)
    unnamed = unnamed_temporaries_supported(tmp_path)
    # one thread everywhere: the zygote forks, and a forked child must not depend on a parent's thread pool
    env = {**worker_env(), "ND_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    zygote = subprocess.Popen([sys.executable, WORKER, "zygote"], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, bufsize=1)
    seen = []
    try:
        for trial in range(20):
            d = tmp_path / f"t{trial}"
            d.mkdir()
            zygote.stdin.write(f"{d}\n")
            zygote.stdin.flush()
            pid, saving = None, False
            while pid is None or not saving:
                line = zygote.stdout.readline()
                assert line, "the zygote died"
                if line.startswith("pid "):
                    pid = int(line.split()[1])
                elif line.strip() == "saving":
                    saving = True
                elif line.strip() == "finished":
                    raise AssertionError("the writer finished before it was killed")
            time.sleep(rng.uniform(0.0, 0.03))
            os.kill(pid, signal.SIGKILL)
            while zygote.stdout.readline().strip() != "reaped":
                pass
            names = sorted(os.listdir(d))
            temporaries = [n for n in names if n.endswith(".tmp")]
            if unnamed:  # the data goes to an unnamed inode: nothing to leave behind, ever
                assert temporaries == [], names
            else:  # a named temporary may survive SIGKILL; the next run removes it
                remove_stale_temporaries(d)
                names = sorted(os.listdir(d))
                assert not [n for n in names if n.endswith(".tmp")]
            assert names and all(n.startswith("mlp_step_") for n in names), names
            assert 1 <= len(names) <= 3  # keep_last_n=2 (+1 while the oldest is being deleted)
            for n in names:  # every file present is complete
                m = load_checkpoint(str(d / n))
                assert m.params is not None and m._train_state is not None
            seen.append(max(int(n.split("_")[-1].split(".")[0]) for n in names))
    finally:
        zygote.stdin.close()
        zygote.wait(timeout=30)
    assert len(seen) == 20 and len(set(seen)) > 1  # the kills did land at different moments


# ------------------------------------------------------------------------------------------ SIGTERM
@pytest.mark.parametrize("name", ["mlp", "deepar"])
def test_sigterm_checkpoints_and_training_completes_identically(name, tmp_path, data):
    from tests import checkpoint_worker as w

    out = tmp_path / "out.json"
    proc = subprocess.Popen([sys.executable, WORKER, "sigterm", name, tmp_path / "ck", out], env=worker_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]  # returned cleanly
    info = json.loads(out.read_text())
    assert info["stopped_by"] == "SIGTERM"
    assert len(info["files"]) == 1 and info["files"][0].startswith(f"{name}_interrupted_step_")
    step = int(info["files"][0].split("_")[-1].split(".")[0])
    assert step == info["steps"] and step >= 4
    # resume here: same result as a run that never stopped
    resumed = load_checkpoint(str(tmp_path / "ck" / info["files"][0]))
    assert resumed.training_logs.stopped_by is None
    assert len(resumed.training_logs.step_losses) == step
    # the worker's slow-down callback is left out: user callbacks that cannot be saved are not compared
    logs = resumed.resume_training(data, w.config(name))
    ref = w.model(name)
    ref_logs = ref.fit_with_config(data, w.config(name))
    assert logs.step_losses == ref_logs.step_losses
    assert logs.stopped_by == ref_logs.stopped_by
    np.testing.assert_array_equal(resumed.params.data, ref.params.data)
    a, b = resumed._train_state[0], ref._train_state[0]
    for k in a:
        if k.startswith("optimizer/"):
            assert a[k].tobytes() == b[k].tobytes(), k


def test_graceful_shutdown_in_process_second_signal_aborts_and_handlers_come_back(tmp_path, data):
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    class SendTwice(Callback):
        def on_batch_end(self, step, logs):
            if step == 2:
                signal.raise_signal(signal.SIGINT)
                signal.raise_signal(signal.SIGINT)

    m = small()
    ft = FaultTolerantTraining().with_graceful_shutdown(True).with_checkpoint_directory(str(tmp_path))
    with pytest.raises(KeyboardInterrupt, match="second signal"):
        m.fit_with_config(data, base_config().with_fault_tolerance(ft).with_callback(SendTwice()))
    assert m.params is None  # the model is as it was before fit
    assert {s: signal.getsignal(s) for s in before} == before

    class SendOnce(Callback):
        def on_batch_end(self, step, logs):
            if step == 2:
                assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
                signal.raise_signal(signal.SIGTERM)

    logs = m.fit_with_config(data, base_config().with_fault_tolerance(ft).with_callback(SendOnce()))
    assert logs.stopped_by == "SIGTERM" and len(logs.step_losses) == 3
    assert sorted(os.listdir(tmp_path)) == ["mlp_interrupted_step_3.safetensors"]
    assert {s: signal.getsignal(s) for s in before} == before


def test_outside_the_main_thread_no_handler_is_installed(tmp_path, data, caplog):
    before = signal.getsignal(signal.SIGTERM)
    seen = []

    class Look(Callback):
        def on_batch_end(self, step, logs):
            seen.append(signal.getsignal(signal.SIGTERM))

    ft = FaultTolerantTraining().with_graceful_shutdown(True).with_checkpoint_directory(str(tmp_path))
    errors = []

    def target():
        try:
            small().fit_with_config(data, base_config(1).with_fault_tolerance(ft).with_callback(Look()))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with caplog.at_level(logging.WARNING, logger="neurodivergent"):
        t = threading.Thread(target=target)
        t.start()
        t.join()
    assert not errors and seen and all(h is before for h in seen)
    assert "outside the main thread" in caplog.text


# ------------------------------------------------------------------------------------------ retries
class FailOnce(Callback):
    """Raises in the given epochs' on_epoch_end the first time each is reached."""

    def __init__(self, epochs, exc=OSError(28, "No space left on device")):
        self.epochs, self.exc, self.failed = set(epochs), exc, set()

    def on_batch_end(self, step, logs):
        return None

    def on_epoch_end(self, epoch, logs):
        if epoch in self.epochs and epoch not in self.failed:
            self.failed.add(epoch)
            raise self.exc


def test_retry_restores_the_last_good_state_and_finishes_identically(data):
    ref = small()
    ref_logs = ref.fit_with_config(data, base_config().with_callback(FailOnce([])))
    m = small()
    ft = FaultTolerantTraining().with_retry_on_failure(1)
    logs = m.fit_with_config(data, base_config().with_fault_tolerance(ft).with_callback(FailOnce([0, 2])))
    assert logs.step_losses == ref_logs.step_losses  # failed epochs replayed from their start, exactly
    np.testing.assert_array_equal(m.params.data, ref.params.data)
    assert [a["epoch"] for a in m._train_state[1]["failures"]] == [1, 3]


def test_retries_exhausted_raise_with_the_history(data):
    class Diverge(Callback):
        def on_batch_end(self, step, logs):
            if step >= 5:
                self.model.params.data[0] = np.nan
            return None

    m = small()
    ft = FaultTolerantTraining().with_retry_on_failure(2)
    with pytest.raises(TrainingFailedError, match="after 2 retries") as info:
        m.fit_with_config(data, base_config().with_fault_tolerance(ft).with_callback(Diverge()))
    attempts = info.value.attempts
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert all(a["error"] == "TrainingDivergedError" and a["epoch"] == 1 for a in attempts)
    assert isinstance(info.value.__cause__, TrainingDivergedError)
    assert m.params is None
    # without retries the error is the original one
    with pytest.raises(TrainingDivergedError):
        small().fit_with_config(data, base_config().with_callback(Diverge()))


def test_keyboard_interrupt_is_not_retried(data):
    class Interrupt(Callback):
        calls = 0

        def on_epoch_end(self, epoch, logs):
            Interrupt.calls += 1
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        small().fit_with_config(data, base_config().with_fault_tolerance(
            FaultTolerantTraining().with_retry_on_failure(3)).with_callback(Interrupt()))
    assert Interrupt.calls == 1


# ------------------------------------------------------------------------------------------ watchdog
def test_watchdog_reports_stalls_and_non_finite_parameters(data, caplog):
    class Stall(Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 0:
                time.sleep(0.25)
            if epoch == 1:
                self.saved = self.model.params.data[0]
                self.model.params.data[0] = np.inf
                time.sleep(0.25)
                self.model.params.data[0] = self.saved

    ft = FaultTolerantTraining().with_health_check_interval(0.05)
    with caplog.at_level(logging.WARNING, logger="neurodivergent"):
        logs = small().fit_with_config(data, base_config().with_fault_tolerance(ft).with_callback(Stall()))
    kinds = [r["kind"] for r in logs.health_reports]
    assert "stall" in kinds and "non_finite" in kinds
    assert "no training step finished" in caplog.text and "NaN or inf" in caplog.text
    quiet = small().fit_with_config(data, base_config(1).with_fault_tolerance(ft))
    assert not hasattr(quiet, "health_reports") or not [r for r in quiet.health_reports if r["kind"] == "non_finite"]


def test_fault_tolerance_config_validation():
    import datetime

    ft = FaultTolerantTraining().with_health_check_interval(datetime.timedelta(minutes=1))
    assert ft.health_check_interval == 60.0
    with pytest.raises(ValueError, match="health_check_interval"):
        FaultTolerantTraining().with_health_check_interval(0)
    with pytest.raises(TypeError, match="retry_on_failure"):
        FaultTolerantTraining().with_retry_on_failure(1.5)
    with pytest.raises(ValueError, match="retry_on_failure"):
        FaultTolerantTraining().with_retry_on_failure(-1)
    with pytest.raises(TypeError, match="fault_tolerance"):
        TrainingConfig().with_fault_tolerance("yes")
    c = TrainingConfig().with_fault_tolerance(ft.with_retry_on_failure(2))
    assert TrainingConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def test_auto_checkpoint_writes_the_latest_state_every_epoch(tmp_path, data):
    ft = FaultTolerantTraining().with_auto_checkpoint(True).with_checkpoint_directory(str(tmp_path))
    m = small()
    m.fit_with_config(data, base_config().with_fault_tolerance(ft))
    found = list_checkpoints(tmp_path)
    assert [os.path.basename(p) for p, _, _ in found] == ["mlp_epoch_3.safetensors"]
    assert found[0][2] == 3
    # with a CheckpointConfig, auto_checkpoint adds nothing of its own
    other = tmp_path / "cfg"
    cfg = base_config().with_fault_tolerance(ft).with_checkpointing(
        CheckpointConfig().with_save_directory(str(other)).with_save_frequency(SaveFrequency.EveryNEpochs(2)))
    small().fit_with_config(data, cfg)
    assert sorted(os.listdir(other)) == ["mlp_epoch_2.safetensors"]
    assert len(list_checkpoints(tmp_path)) == 1
