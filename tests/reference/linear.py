"""float64 numpy reference of csrc/linear.cpp (PyTorch layout: w is (O, I)).

Shapes: x (N, I), w (O, I), b (O,), y / dy (N, O).
"""
import numpy as np


def forward(x, w, b=None):
    """y = x @ w.T + b"""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    y = x @ w.T
    if b is not None:
        y = y + np.asarray(b, np.float64)
    return y


def backward(dy, x, w):
    """Returns (dx, dw, db) for y = x @ w.T + b: dx = dy @ w, dw = dy.T @ x, db = dy.sum(0)."""
    dy = np.asarray(dy, np.float64)
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    return dy @ w, dy.T @ x, dy.sum(axis=0)
