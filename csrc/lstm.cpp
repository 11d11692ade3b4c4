// LSTM kernels (being written)
