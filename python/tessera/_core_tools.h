// The store tools of tessera._core (verify, diff, rm, gc, export: the CLI's
// verbs as functions), in _core_tools.cc, and the helpers they share with
// _core.cc.
#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>

#include "tessera/progress.h"

namespace tessera_py {

// A Python progress callback f(operation, done, total, seconds, finished) as a
// ProgressFn; empty for None (_core.cc).
tessera::ProgressFn progress_fn(const pybind11::object& f);
// A thread count from Python: negative is InvalidArgument (_core.cc).
size_t checked_threads(int64_t n);
// Adds verify, diff, remove, gc and export_safetensors to the module.
void bind_tools(pybind11::module_& m);

}  // namespace tessera_py
