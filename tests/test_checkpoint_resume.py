"""Exact resume in a new process: an uninterrupted run (in a subprocess) writes a checkpoint after every
step and after every epoch; a second subprocess resumes from an epoch boundary, mid-epoch, after the
last step and after the last epoch; parameters, optimizer state, per-step losses and rates and the
history must be bitwise those of the uninterrupted run."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import neurodivergent
from neurodivergent.checkpointing import list_checkpoints

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "checkpoint_worker.py")


def run_worker(*args, timeout=240):
    env = dict(os.environ)
    # the children import the same neurodivergent as this process (the source tree with a dev build, or
    # the installed package in CI, whose source tree has no compiled _core)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(os.path.abspath(neurodivergent.__file__))),
                                         env.get("PYTHONPATH", "")])
    env["ND_NUM_THREADS"] = str(neurodivergent.get_num_threads())
    proc = subprocess.run([sys.executable, WORKER, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def compare(ref, res, prefix_ref, prefix_res):
    keys_ref = {k[len(prefix_ref):] for k in ref.files if k.startswith(prefix_ref)}
    keys_res = {k[len(prefix_res):] for k in res.files if k.startswith(prefix_res)}
    assert keys_ref == keys_res
    for k in sorted(keys_ref):
        a, b = ref[prefix_ref + k], res[prefix_res + k]
        if k == "history":
            assert json.loads(str(a)) == json.loads(str(b)), k
        else:
            assert a.dtype == b.dtype and a.shape == b.shape, k
            assert a.tobytes() == b.tobytes(), f"{k} differs"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """name -> (directory, results) of the uninterrupted run (one subprocess per model, shared)."""
    done = {}

    def get(name):
        if name not in done:
            d = tmp_path_factory.mktemp(f"ref_{name}")
            run_worker("reference", name, d / "ck", d / "ref.npz")
            done[name] = (d, np.load(d / "ref.npz"))
        return done[name]

    return get


@pytest.mark.parametrize("name", ["mlp", "lstm", "deepar"])
def test_resume_in_a_new_process_is_bitwise_identical(name, tmp_path, reference):
    ref_dir, ref = reference(name)
    # checkpointing every step and every epoch does not change the run
    compare(ref, ref, "steps:", "epochs:")
    n_steps = len(ref["steps:step_losses"])
    steps = list_checkpoints(ref_dir / "ck" / "steps")
    epochs = list_checkpoints(ref_dir / "ck" / "epochs")
    assert [s for _, s, _ in steps] == list(range(1, n_steps + 1))
    per_epoch = n_steps // len(epochs)
    assert len(epochs) >= 3 and per_epoch * len(epochs) == n_steps
    chosen = [
        epochs[0][0],  # epoch boundary (after the first epoch)
        steps[per_epoch + per_epoch // 2][0],  # in the middle of the second epoch
        steps[-1][0],  # after the last step, before the last epoch's end
        epochs[-1][0],  # after the last epoch: nothing left but the end of training
    ]
    out = tmp_path / "res.npz"
    run_worker("resume", name, out, *chosen)
    res = np.load(out)
    for i in range(len(chosen)):
        compare(ref, res, "steps:", f"{i}:")
    # the step losses really come from a resumed run: the prefix before the checkpoint was read back
    assert len(res["1:step_losses"]) == n_steps


def test_a_checkpoint_records_where_it_was_taken(reference):
    from neurodivergent.checkpointing import read_file

    ref_dir, _ = reference("mlp")
    steps = list_checkpoints(ref_dir / "ck" / "steps")
    path, step, epoch = steps[4]
    tensors, meta = read_file(path)
    state = json.loads(meta["training_state"])
    assert state["position"]["step"] == 5 and state["position"]["in_epoch"]
    assert state["optimizer"]["step_count"] == 5 and "trainer/order" in tensors
    assert tensors["logs/step_losses"].shape == (5,)
    md = json.loads(meta["training_metadata"])
    assert md["library_version"] == neurodivergent.__version__ and md["step"] == 5
    assert md["config"]["batch_size"] == 64 and "saved_at" in md and "run_started" in md
