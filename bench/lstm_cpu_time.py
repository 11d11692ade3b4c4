"""LSTM layer kernels alone, per-call thread CPU time (robust on a shared VM), 1 thread, float32.

    PYTHONPATH=python python3 bench/lstm_cpu_time.py

GFLOP/s count 2*B*T*(I+H)*4H for the forward and twice that for the backward (dy on every step).
"""
import sys, time, numpy as np
import neurodivergent as nd
from neurodivergent.nn import functional as F
nd.set_num_threads(1)
rng = np.random.default_rng(0)
for (B,T,I,H) in [(256,96,1,64),(32,96,1,64),(256,96,1,128),(256,96,8,256),(32,168,1,256),(256,24,64,256)]:
    x = rng.normal(size=(B,T,I)).astype(np.float32)
    w_ih = (rng.normal(size=(4*H,I))*0.1).astype(np.float32); w_hh=(rng.normal(size=(4*H,H))*0.1).astype(np.float32)
    b = np.zeros(4*H, np.float32)
    dy = np.ones((B,T,H), np.float32)
    fl = 2*B*T*(I+H)*4*H
    fw, bw = [], []
    for r in range(7):
        c=time.thread_time(); o=F.lstm_forward(x,w_ih,w_hh,b,b); fw.append(time.thread_time()-c)
        c=time.thread_time(); g=F.lstm_backward(o.cache,dy); bw.append(time.thread_time()-c)
    f, bb = np.median(fw), np.median(bw)
    print(f"B={B} T={T} I={I} H={H}: fwd {f*1e3:.1f} ms {fl/f/1e9:.1f} GF/s  bwd {bb*1e3:.1f} ms {2*fl/bb/1e9:.1f} GF/s")
