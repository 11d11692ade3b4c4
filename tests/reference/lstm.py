"""float64 numpy reference of csrc/lstm.cpp (one LSTM layer, PyTorch layout and gate order i, f, g, o).

Shapes: x (B,T,I), w_ih (4H,I), w_hh (4H,H), b_ih / b_hh (4H,), h0 / c0 (B,H), y / dy (B,T,H).
"""
import numpy as np


def _sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def forward(x, w_ih, w_hh, b_ih, b_hh, h0=None, c0=None):
    """Returns (y, h_T, c_T, cache); cache = (x, w_ih, w_hh, h0, c0, gates (B,T,4H) activated, cells (B,T,H), y)."""
    x, w_ih, w_hh, b_ih, b_hh = (np.asarray(a, np.float64) for a in (x, w_ih, w_hh, b_ih, b_hh))
    B, T, _ = x.shape
    H = w_hh.shape[1]
    h = np.zeros((B, H)) if h0 is None else np.asarray(h0, np.float64)
    c = np.zeros((B, H)) if c0 is None else np.asarray(c0, np.float64)
    h0_, c0_ = h.copy(), c.copy()
    y = np.empty((B, T, H))
    cells = np.empty((B, T, H))
    gates = np.empty((B, T, 4 * H))
    xw = x @ w_ih.T + b_ih + b_hh  # (B,T,4H)
    for t in range(T):
        z = xw[:, t] + h @ w_hh.T
        i, f, o = _sigmoid(z[:, :H]), _sigmoid(z[:, H:2 * H]), _sigmoid(z[:, 3 * H:])
        g = np.tanh(z[:, 2 * H:3 * H])
        c = f * c + i * g
        h = o * np.tanh(c)
        gates[:, t] = np.concatenate([i, f, g, o], axis=1)
        cells[:, t] = c
        y[:, t] = h
    return y, h, c, (x, w_ih, w_hh, h0_, c0_, gates, cells, y)


def backward(cache, dy=None, dh=None, dc=None):
    """Returns (dx, dh0, dc0, dw_ih, dw_hh, db) (db is the gradient of b_ih and of b_hh alike)."""
    x, w_ih, w_hh, h0, c0, gates, cells, y = cache
    B, T, _ = x.shape
    H = w_hh.shape[1]
    dh_next = np.zeros((B, H)) if dh is None else np.asarray(dh, np.float64).copy()
    dc_next = np.zeros((B, H)) if dc is None else np.asarray(dc, np.float64).copy()
    dG = np.empty((B, T, 4 * H))
    for t in range(T - 1, -1, -1):
        i, f, g, o = (gates[:, t, k * H:(k + 1) * H] for k in range(4))
        c = cells[:, t]
        c_prev = cells[:, t - 1] if t > 0 else c0
        tc = np.tanh(c)
        dht = dh_next + (0.0 if dy is None else np.asarray(dy, np.float64)[:, t])
        dct = dc_next + dht * o * (1 - tc ** 2)
        dG[:, t] = np.concatenate(
            [dct * g * i * (1 - i), dct * c_prev * f * (1 - f), dct * i * (1 - g ** 2), dht * tc * o * (1 - o)],
            axis=1)
        dc_next = dct * f
        dh_next = dG[:, t] @ w_hh
    h_prev = np.concatenate([h0[:, None], y[:, :-1]], axis=1)  # (B,T,H)
    dGf = dG.reshape(B * T, 4 * H)
    dx = (dGf @ w_ih).reshape(x.shape)
    dw_ih = dGf.T @ x.reshape(B * T, -1)
    dw_hh = dGf.T @ h_prev.reshape(B * T, H)
    db = dGf.sum(axis=0)
    return dx, dh_next, dc_next, dw_ih, dw_hh, db
