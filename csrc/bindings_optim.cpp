#include "bindings_register.h"

namespace nd {
void register_optim(pybind11::module_& m) {}
}  // namespace nd
