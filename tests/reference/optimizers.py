"""float64 numpy references of the optimizers, written from the algorithm boxes of the PyTorch docs
(torch.optim.Adam / AdamW / SGD / RMSprop, maximize=False). Deliberately in the docs' form (bias-
corrected m_hat / v_hat, explicit branches), not the kernels' rearranged form.

Each class: Ref(n, **hyper); .step(param, grad, lr) -> new param (float64); .state holds the buffers."""
import numpy as np


class Adam:
    """weight_decay coupled (g += wd*p) unless decoupled (p *= 1 - lr*wd first, AdamW)."""

    def __init__(self, n, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False, decoupled=False):
        self.b1, self.b2, self.eps, self.wd = beta1, beta2, eps, weight_decay
        self.amsgrad, self.decoupled = amsgrad, decoupled
        self.m = np.zeros(n)
        self.v = np.zeros(n)
        self.v_max = np.zeros(n)
        self.t = 0

    def step(self, param, grad, lr):
        self.t += 1
        t = self.t
        theta = np.array(param, np.float64)
        g = np.array(grad, np.float64)
        if self.decoupled:
            theta = theta - lr * self.wd * theta
        elif self.wd != 0:
            g = g + self.wd * theta
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * g ** 2
        m_hat = self.m / (1 - self.b1 ** t)
        if self.amsgrad:
            self.v_max = np.maximum(self.v_max, self.v)
            v_hat = self.v_max / (1 - self.b2 ** t)
        else:
            v_hat = self.v / (1 - self.b2 ** t)
        return theta - lr * m_hat / (np.sqrt(v_hat) + self.eps)


class SGD:
    def __init__(self, n, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
        self.mu, self.tau, self.nesterov, self.wd = momentum, dampening, nesterov, weight_decay
        self.b = np.zeros(n)
        self.t = 0

    def step(self, param, grad, lr):
        self.t += 1
        theta = np.array(param, np.float64)
        g = np.array(grad, np.float64)
        if self.wd != 0:
            g = g + self.wd * theta
        if self.mu != 0:
            if self.t > 1:
                self.b = self.mu * self.b + (1 - self.tau) * g
            else:
                self.b = g.copy()
            if self.nesterov:
                g = g + self.mu * self.b
            else:
                g = self.b
        return theta - lr * g


class RMSprop:
    def __init__(self, n, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        self.alpha, self.eps, self.wd, self.mu, self.centered = alpha, eps, weight_decay, momentum, centered
        self.v = np.zeros(n)
        self.g_ave = np.zeros(n)
        self.b = np.zeros(n)
        self.t = 0

    def step(self, param, grad, lr):
        self.t += 1
        theta = np.array(param, np.float64)
        g = np.array(grad, np.float64)
        if self.wd != 0:
            g = g + self.wd * theta
        self.v = self.alpha * self.v + (1 - self.alpha) * g ** 2
        v_tilde = self.v
        if self.centered:
            self.g_ave = self.g_ave * self.alpha + (1 - self.alpha) * g
            v_tilde = v_tilde - self.g_ave ** 2
        if self.mu > 0:
            self.b = self.mu * self.b + g / (np.sqrt(v_tilde) + self.eps)
            return theta - lr * self.b
        return theta - lr * g / (np.sqrt(v_tilde) + self.eps)
