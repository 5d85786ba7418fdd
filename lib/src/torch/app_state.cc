// The CPU RNG and training progress as values, Stateful's save and load, and
// AppState (tessera/module.h).
#include <ATen/ATen.h>

#include <cstring>
#include <mutex>

#include "tessera/error.h"
#include "tessera/module.h"
#include "torch/state_keys.h"

namespace tessera {

void add_rng_state(StateDict& sd, const std::string& name) {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  at::Tensor state;
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    state = gen.get_state().contiguous();
  }
  sd.add_value(name, Bytes{std::string(static_cast<const char*>(state.data_ptr()),
                                       static_cast<size_t>(state.numel()) * state.element_size())});
}

void restore_rng_state(const StateDict& sd, const std::string& name) {
  const Bytes& bytes = value_as<Bytes>(sd, name);
  at::Tensor state = at::empty({static_cast<int64_t>(bytes.data.size())}, at::TensorOptions().dtype(at::kByte));
  if (!bytes.data.empty()) std::memcpy(state.data_ptr(), bytes.data.data(), bytes.data.size());
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  try {
    gen.set_state(state);
  } catch (const c10::Error& e) {
    throw InvalidArgument("value '" + name + "' is not a CPU generator state: " + e.what_without_backtrace());
  }
}

void add_progress(StateDict& sd, const std::string& prefix, const TrainingProgress& progress) {
  sd.add_value(join(prefix, "epoch"), progress.epoch);
  sd.add_value(join(prefix, "step"), progress.step);
  sd.add_value(join(prefix, "data_position"), progress.data_position);
}

TrainingProgress read_progress(const StateDict& sd, const std::string& prefix) {
  TrainingProgress p;
  p.epoch = value_as<int64_t>(sd, join(prefix, "epoch"));
  p.step = value_as<int64_t>(sd, join(prefix, "step"));
  p.data_position = value_as<std::string>(sd, join(prefix, "data_position"));
  return p;
}

// ---- Stateful ----

Stateful::~Stateful() = default;

SaveResult save(Stateful& state, Store& store, const std::string& checkpoint, const SaveOptions& options) {
  StateDict sd;
  state.state_dict(sd);
  return save(sd, store, checkpoint, options);
}

LoadResult load(Stateful& state, const Store& store, const std::string& checkpoint, const LoadOptions& options) {
  StateDict sd;
  state.state_dict(sd);
  LoadResult result = load(sd, store, checkpoint, options);
  state.load_state_dict(sd);
  return result;
}

AppState::AppState(torch::nn::Module& model, PlacementFn placement)
    : model_(model), placement_(std::move(placement)) {}

AppState::AppState(torch::nn::Module& model, torch::optim::Optimizer& optimizer, PlacementFn placement)
    : model_(model), optimizer_(&optimizer), placement_(std::move(placement)) {}

void AppState::state_dict(StateDict& sd) {
  add_module(sd, "model", model_, placement_);
  if (optimizer_) add_optimizer(sd, "optim", *optimizer_, model_, placement_);
  add_progress(sd, "progress", progress);
  if (include_rng) add_rng_state(sd, "rng.cpu");
}

void AppState::load_state_dict(const StateDict& sd) {
  if (optimizer_) apply_optimizer_values(sd, "optim", *optimizer_, model_);
  progress = read_progress(sd, "progress");
  if (include_rng) restore_rng_state(sd, "rng.cpu");
}

}  // namespace tessera
