#include "bindings_register.h"

namespace nd {
void register_gru(pybind11::module_& m) {}
}  // namespace nd
