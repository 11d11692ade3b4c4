#include "bindings_register.h"

namespace nd {
void register_train(pybind11::module_& m) {}
}  // namespace nd
