"""float64 numpy reference of csrc/optim.cpp: torch.optim.Adam / AdamW single-tensor step, norms."""
import numpy as np


def adam_step(param, grad, m, v, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
              decoupled=False):
    """Returns new (param, m, v) in float64; step is the 1-based step count."""
    p = np.array(param, np.float64)
    g = np.array(grad, np.float64)
    m = np.array(m, np.float64)
    v = np.array(v, np.float64)
    if weight_decay != 0 and not decoupled:
        g = g + weight_decay * p
    if decoupled:
        p = p * (1.0 - lr * weight_decay)
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    bc1 = 1.0 - beta1 ** step
    bc2 = 1.0 - beta2 ** step
    denom = np.sqrt(v) / np.sqrt(bc2) + eps
    p = p - (lr / bc1) * m / denom
    return p, m, v


def sum_squares(x):
    x = np.asarray(x, np.float64)
    return float(np.sum(x * x))
