// Module parameters and buffers as state-dict entries filled in place
// (add_module in tessera/module.h; InPlaceSource in module_state.h).
#include "torch/module_state.h"

#include <torch/torch.h>

#include "tessera/error.h"
#include "torch/state_keys.h"

namespace tessera {

InPlaceSource::InPlaceSource(at::Tensor tensor, Shape global_shape, Shape offsets, std::function<void()> after_load)
    : TorchSource(std::move(tensor), std::move(global_shape), std::move(offsets)),
      after_load_(std::move(after_load)) {}

void InPlaceSource::loaded(bool cast) {
  {
    torch::NoGradGuard no_grad;
    TorchSource::loaded(cast);
  }
  if (!tensor().is_inference()) tensor().unsafeGetTensorImpl()->bump_version();
  if (after_load_) after_load_();
}

TensorEntry in_place_entry(const std::string& key, const at::Tensor& t, const std::optional<Placement>& placement,
                           std::function<void()> after_load) {
  try {
    if (!t.defined()) throw InvalidArgument("undefined tensor");
    Placement where{Shape(t.sizes().begin(), t.sizes().end()), Shape(t.dim(), 0)};
    if (placement) {
      if (placement->global_shape.size() != placement->offsets.size() ||
          static_cast<int64_t>(placement->global_shape.size()) != t.dim())
        throw InvalidArgument("placement has " + std::to_string(placement->global_shape.size()) +
                              "-D global shape and " + std::to_string(placement->offsets.size()) +
                              " offsets for a " + std::to_string(t.dim()) + "-D tensor");
      where = *placement;
    }
    TensorEntry e = entry_of(
        std::make_shared<InPlaceSource>(t, where.global_shape, where.offsets, std::move(after_load)));
    e.view.replica_index = where.replica_index;
    e.view.replica_count = where.replica_count;
    return e;
  } catch (const InvalidArgument& ex) {
    throw InvalidArgument("tensor '" + key + "': " + ex.what());
  }
}

void add_module(StateDict& sd, const std::string& prefix, const torch::nn::Module& m, const PlacementFn& placement) {
  auto add = [&](const std::string& name, const at::Tensor& t) {
    if (!t.defined()) return;
    const std::string key = join(prefix, name);
    sd.add_tensor(key, in_place_entry(key, t, placement ? placement(name) : std::nullopt));
  };
  for (const auto& p : m.named_parameters(/*recurse=*/true)) add(p.key(), p.value());
  for (const auto& b : m.named_buffers(/*recurse=*/true)) add(b.key(), b.value());
}

}  // namespace tessera
