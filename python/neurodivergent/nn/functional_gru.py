"""GRU kernels as numpy functions (see neurodivergent.nn.functional)."""
__all__: list = []
