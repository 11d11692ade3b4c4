"""Closed forms of the learning-rate schedules (python/neurodivergent/training/schedulers.py), written
independently of the library (cycle search by direct summation for SGDR)."""
import math


def step_decay(lr0, step_size, gamma, e):
    return lr0 * gamma ** math.floor(e / step_size)


def exponential_decay(lr0, rate, steps, e):
    return lr0 * rate ** (e / steps)


def cosine(lr0, min_lr, t_max, e):
    return min_lr + (lr0 - min_lr) * (1 + math.cos(math.pi * e / t_max)) / 2


def sgdr(lr0, t_0, t_mult, min_lr, e):
    start = 0
    length = t_0
    while True:
        if start <= e < start + length:
            return min_lr + (lr0 - min_lr) * (1 + math.cos(math.pi * (e - start) / length)) / 2
        start += length
        length *= t_mult


def warmup(lr, step, n):
    return lr * min(1.0, (step + 1) / n) if n else lr
