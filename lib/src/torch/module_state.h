// Entries that a load fills in place: module parameters and buffers, and
// optimizer state (which takes its parameter's placement). Shared by
// module_state.cc and optimizer_state.cc.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "tessera/module.h"
#include "torch/torch_source.h"

namespace tessera {

// A TorchSource whose load fills the tensor under NoGradGuard, so parameters
// (leaves that require grad) may be targets, then bumps its version counter
// so autograd notices the change like after any in-place write, then runs
// `after_load` (if set).
class InPlaceSource : public TorchSource {
 public:
  InPlaceSource(at::Tensor tensor, Shape global_shape, Shape offsets, std::function<void()> after_load = {});
  void loaded(bool cast) override;

 private:
  std::function<void()> after_load_;
};

// The entry for `t` under `key`: the box `placement` gives (with its
// replicas), else the whole tensor, filled in place by a load (see
// InPlaceSource). Throws InvalidArgument naming `key` for unsupported tensors
// and placements of another rank than `t`'s.
TensorEntry in_place_entry(const std::string& key, const at::Tensor& t, const std::optional<Placement>& placement,
                           std::function<void()> after_load = {});

}  // namespace tessera
