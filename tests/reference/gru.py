"""float64 numpy reference of csrc/gru.cpp: one GRU layer over a sequence, torch.nn.GRU's formulas.

Shapes: B batch, T steps, I input, H hidden, G = 3H (gate rows r, z, n):
x (B, T, I), w_ih (G, I), w_hh (G, H), b_ih (G,), b_hh (G,), h0 (B, H) or None (zeros), y / dy (B, T, H),
h / dh (B, H).

    r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}
"""
import numpy as np


def sigmoid(v):
    """1 / (1 + exp(-v)) without overflow."""
    e = np.exp(-np.abs(v))
    return np.where(v >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def forward(x, w_ih, w_hh, b_ih, b_hh, h0=None):
    """Returns (y (B,T,H), h (B,H), cache) with cache = dict of per-step activations for backward."""
    x = np.asarray(x, np.float64)
    w_ih = np.asarray(w_ih, np.float64)
    w_hh = np.asarray(w_hh, np.float64)
    b_ih = np.asarray(b_ih, np.float64)
    b_hh = np.asarray(b_hh, np.float64)
    B, T, _ = x.shape
    H = w_hh.shape[1]
    h = np.zeros((B, H)) if h0 is None else np.asarray(h0, np.float64).copy()
    ys, hs_prev, rs, zs, ns, hns = [], [], [], [], [], []
    for t in range(T):
        gi = x[:, t] @ w_ih.T + b_ih  # (B, G)
        gh = h @ w_hh.T + b_hh  # (B, G)
        r = sigmoid(gi[:, :H] + gh[:, :H])
        z = sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        hn = gh[:, 2 * H:]
        n = np.tanh(gi[:, 2 * H:] + r * hn)
        hs_prev.append(h)
        h = (1.0 - z) * n + z * h
        ys.append(h)
        rs.append(r)
        zs.append(z)
        ns.append(n)
        hns.append(hn)
    y = np.stack(ys, axis=1)
    cache = dict(x=x, w_ih=w_ih, w_hh=w_hh, h_prev=np.stack(hs_prev, axis=1), r=np.stack(rs, axis=1),
                 z=np.stack(zs, axis=1), n=np.stack(ns, axis=1), hn=np.stack(hns, axis=1))
    return y, h, cache


def backward(cache, dy=None, dh=None):
    """Returns (dx, dh0, dw_ih, dw_hh, db_ih, db_hh) for scalar L with dL/dy = dy and dL/dh_final = dh
    (None = zero)."""
    x, w_ih, w_hh = cache["x"], cache["w_ih"], cache["w_hh"]
    hp, r, z, n, hn = cache["h_prev"], cache["r"], cache["z"], cache["n"], cache["hn"]
    B, T, _ = x.shape
    H = w_hh.shape[1]
    dy = np.zeros((B, T, H)) if dy is None else np.asarray(dy, np.float64)
    g = np.zeros((B, H)) if dh is None else np.asarray(dh, np.float64).copy()
    dxg = np.zeros((B, T, 3 * H))  # gradient w.r.t. x_t W_ih^T + b_ih
    dhg = np.zeros((B, T, 3 * H))  # gradient w.r.t. h_{t-1} W_hh^T + b_hh
    for t in reversed(range(T)):
        d = g + dy[:, t]
        dn = d * (1.0 - z[:, t])
        dz = d * (hp[:, t] - n[:, t])
        dan = dn * (1.0 - n[:, t] ** 2)
        dar = dan * hn[:, t] * r[:, t] * (1.0 - r[:, t])
        daz = dz * z[:, t] * (1.0 - z[:, t])
        dxg[:, t] = np.concatenate([dar, daz, dan], axis=1)
        dhg[:, t] = np.concatenate([dar, daz, dan * r[:, t]], axis=1)
        g = d * z[:, t] + dhg[:, t] @ w_hh
    dx = dxg @ w_ih
    dw_ih = np.einsum("btg,bti->gi", dxg, x)
    dw_hh = np.einsum("btg,bth->gh", dhg, hp)
    return dx, g, dw_ih, dw_hh, dxg.sum(axis=(0, 1)), dhg.sum(axis=(0, 1))
