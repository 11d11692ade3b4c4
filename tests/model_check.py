"""The generic check every model passes (DESIGN §5): fit on small real data, loss decreases,
predict shape and columns, save/load round trip gives identical forecasts, seeded runs are bitwise
equal. New models call ``check_model(make_model)`` from their own test file."""
from __future__ import annotations

import numpy as np

from neurodivergent import TrainingConfig, load_dataset, load_model


def check_model(make_model, tmp_path, dataset="us_macro_quarterly", epochs=8, batch_size=16):
    data = load_dataset(dataset)
    train, test = data.split_last(make_model().config.horizon)
    tc = TrainingConfig().with_max_epochs(epochs).with_batch_size(batch_size).with_seed(7).with_verbose(False)

    model = make_model()
    logs = model.fit_with_config(train, tc)
    losses = logs.history["training_loss"]
    assert len(losses) == epochs
    assert np.all(np.isfinite(losses))
    # learning happens: the last epoch's loss is clearly below the first
    assert losses[-1] < 0.8 * losses[0], losses

    fc = model.predict(train)
    h = model.config.horizon
    assert fc.columns == ["unique_id", "ds", model.alias]
    assert len(fc) == data.n_series * h
    yhat = fc.values(model.alias)
    assert yhat.shape == (data.n_series, h) and np.all(np.isfinite(yhat))
    # the forecast dates are exactly the held-out dates
    np.testing.assert_array_equal(fc.values("ds") if False else fc["ds"].reshape(data.n_series, h),
                                  np.stack([test.series_ds(i) for i in range(data.n_series)]))

    path = tmp_path / "model.safetensors"
    model.save(str(path))
    again = load_model(str(path))
    assert type(again) is type(model) and again.config == model.config
    np.testing.assert_array_equal(again.predict(train).values(model.alias), yhat)
    np.testing.assert_array_equal(type(model).load(str(path)).params.data, model.params.data)
    assert again.training_logs.history == logs.history

    twin = make_model()
    logs2 = twin.fit_with_config(train, tc)
    assert logs2.step_losses == logs.step_losses
    np.testing.assert_array_equal(twin.params.data, model.params.data)
    other = make_model()
    other.fit_with_config(train, tc.with_seed(8))
    assert not np.array_equal(other.params.data, model.params.data)
    return model, logs
