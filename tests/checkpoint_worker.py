"""Subprocess side of the checkpoint tests (tests/test_checkpoint_resume.py, tests/test_fault_tolerance.py).

    python checkpoint_worker.py reference <model> <dir> <out.npz>   uninterrupted run, checkpoints in <dir>
    python checkpoint_worker.py resume <model> <out.npz> <ckpt>...   resume each checkpoint, results per ckpt
    python checkpoint_worker.py sigterm <model> <dir> <out.json>    graceful shutdown on SIGTERM
    python checkpoint_worker.py zygote                               fork a checkpoint writer per stdin line

Not collected by pytest (no test_ prefix)."""
import json
import os
import sys
import time

import numpy as np

from neurodivergent import load_checkpoint
from neurodivergent.checkpointing import CheckpointConfig, CheckpointStrategy, SaveFrequency
from neurodivergent.data.datasets import load_dataset
from neurodivergent.models.deepar import DeepAR, DeepARConfig
from neurodivergent.models.lstm import LSTM, LSTMConfig
from neurodivergent.models.mlp import MLP, MLPConfig
from neurodivergent.training import (AdamWConfig, Callback, LearningRateScheduler, Mode, Optimizer, ReduceLROnPlateau,
                                     TrainingConfig)
from neurodivergent.training.fault_tolerance import FaultTolerantTraining


def data():
    return load_dataset("us_macro_quarterly")


def model(name):
    if name == "mlp":
        return MLP(MLPConfig().with_input_size(8).with_hidden_size(16).with_horizon(4))
    if name == "deepar":  # its own windows (lags, features) and NLL on the shared loop; dropout 0.05
        return DeepAR(DeepARConfig().with_input_size(8).with_hidden_size(8).with_horizon(4))
    return LSTM(LSTMConfig().with_input_size(8).with_hidden_size(8).with_horizon(4))


def config(name, **kw):
    """Every stateful feature on: validation, early stopping with best weights, ReduceLROnPlateau,
    schedule with warmup, AdamW, dropout, augmentation, clipping."""
    # early stopping keeps the *worst* epoch (Maximize) so that the best weights to restore at the end are
    # not the last ones; ReduceLROnPlateau never sees an improvement by 10, so it halves the rate after
    # every epoch from the second on: both only come out right when their state is resumed
    c = (TrainingConfig().with_max_epochs(kw.get("epochs", 3)).with_batch_size(64).with_seed(5).with_verbose(False)
         .with_validation_split(0.2).with_early_stopping(patience=5, mode=Mode.Maximize)
         .with_callback(ReduceLROnPlateau(patience=1, factor=0.5, min_delta=10.0))
         .with_optimizer(Optimizer.AdamW(AdamWConfig().with_weight_decay(0.01)))
         .with_learning_rate(3e-3)
         .with_learning_rate_scheduler(LearningRateScheduler.cosine_annealing().with_t_max(3))
         .with_warmup_steps(5).with_data_augmentation(True))
    if name == "mlp":
        c = c.with_dropout(0.1).with_batch_norm(True)
    return c


def result(m, logs):
    tensors, state = m._train_state
    out = {"params": m.params.data.copy(), "step_losses": np.array(logs.step_losses),
           "step_lrs": np.array(logs.step_lrs), "step_count": np.array(state["optimizer"]["step_count"])}
    for k, v in tensors.items():
        if k.startswith(("optimizer/", "trainer/", "early_stopping/", "buffers/")):
            out[k] = v
    hist = {k: v for k, v in logs.history.items() if k != "epoch_time"}
    out["history"] = np.array(json.dumps(hist, sort_keys=True))
    return out


def save(path, results):
    np.savez(path, **results)


def main(argv):
    mode = argv[1]
    if mode == "reference":
        name, directory, out = argv[2], argv[3], argv[4]
        res = {}
        for label, freq in (("steps", SaveFrequency.EveryNSteps(1)), ("epochs", SaveFrequency.EveryNEpochs(1))):
            ck = CheckpointConfig().with_save_directory(os.path.join(directory, label)).with_save_frequency(freq)
            m = model(name)
            logs = m.fit_with_config(data(), config(name).with_checkpointing(ck))
            res.update({f"{label}:{k}": v for k, v in result(m, logs).items()})
        save(out, res)
    elif mode == "resume":
        name, out, paths = argv[2], argv[3], argv[4:]
        res = {}
        d = data()
        for i, p in enumerate(paths):
            m = load_checkpoint(p)
            # the checkpoint's own config (rebuilt from the file), checkpoints elsewhere
            logs = m.resume_training(d)
            res.update({f"{i}:{k}": v for k, v in result(m, logs).items()})
        save(out, res)
    elif mode == "sigterm":
        name, directory, out = argv[2], argv[3], argv[4]

        class Slow(Callback):
            def on_batch_end(self, step, logs):
                if step == 3:
                    print("ready", flush=True)
                time.sleep(0.01)

        ft = (FaultTolerantTraining().with_graceful_shutdown(True).with_checkpoint_directory(directory))
        m = model(name)
        logs = m.fit_with_config(data(), config(name).with_fault_tolerance(ft).with_callback(Slow()))
        with open(out, "w") as f:
            json.dump({"stopped_by": logs.stopped_by, "steps": len(logs.step_losses),
                       "files": sorted(os.listdir(directory))}, f)
    elif mode == "zygote":
        # fork a writer per line "<dir>": this process never runs a kernel, so forking is safe
        for line in sys.stdin:
            directory = line.strip()
            if not directory:
                break
            pid = os.fork()
            if pid == 0:
                try:
                    ck = (CheckpointConfig().with_save_directory(directory).with_keep_last_n(2)
                          .with_strategy(CheckpointStrategy.Every).with_save_frequency(SaveFrequency.EveryNSteps(1)))

                    class Announce(Callback):
                        def on_batch_end(self, step, logs):
                            if step == 1:  # the first checkpoint (after step 0) is on disk
                                print("saving", flush=True)

                    m = model("mlp")
                    m.fit_with_config(data(), TrainingConfig().with_max_epochs(50).with_batch_size(64).with_seed(1)
                                      .with_verbose(False).with_checkpointing(ck).with_callback(Announce()))
                    print("finished", flush=True)
                finally:
                    os._exit(0)
            print(f"pid {pid}", flush=True)
            os.waitpid(pid, 0)
            print("reaped", flush=True)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv)
