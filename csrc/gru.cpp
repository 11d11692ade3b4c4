// GRU kernels (being written)
