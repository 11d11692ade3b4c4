// Registration hooks of the binding files: each bindings_<op>.cpp adds its functions to _core.
#pragma once
#include <pybind11/pybind11.h>

namespace nd {
void register_lstm(pybind11::module_& m);   // bindings_lstm.cpp
void register_gru(pybind11::module_& m);    // bindings_gru.cpp
void register_optim(pybind11::module_& m);  // bindings_optim.cpp: optimizers beyond adam_step
void register_train(pybind11::module_& m);  // bindings_train.cpp: quantile/weighted losses, clipping, penalties
void register_likelihood(pybind11::module_& m);  // bindings_likelihood.cpp: NLL, likelihood parameters, samplers
void register_attention(pybind11::module_& m);  // bindings_attention.cpp: attention, layer norm
}  // namespace nd
