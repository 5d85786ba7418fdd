// Training state of LibTorch modules and optimizers as state-dict entries,
// like torch.distributed.checkpoint's get_state_dict / set_state_dict and the
// Stateful "AppState" wrapper DCP users write. Link tessera_torch.
//
//   tessera::AppState app(*model, optimizer);   // model, optimizer, progress, CPU RNG
//   app.progress.step = 1000;
//   tessera::save(app, store, "step-1000");
//   ...                                          // later, a fresh model and optimizer:
//   tessera::load(app, store, "step-1000");      // filled in place; app.progress restored
//
// Keys. Parameters and buffers under their qualified module names with a
// prefix ("model.layers.0.qkv.weight"). Optimizer state is keyed by the
// qualified name of the PARAMETER it belongs to, as DCP does
// ("optim.state.layers.0.qkv.weight.exp_avg"), so it reshards with the
// parameter: it gets the parameter's placement. Param-group hyperparameters
// are values ("optim.param_groups.0.lr").
//
// The same calls build the state dict for save (entries read the tensors) and
// for load (entries are filled in place): register, then tessera::save or
// tessera::load, then, after a load, apply the values (apply_optimizer_values,
// restore_rng_state, read_progress). Stateful/AppState do these steps.
//
// Loading writes the bytes straight into the parameters' own storage (for CPU
// tensors; CUDA tensors are staged through pinned host memory and copied in,
// under NoGradGuard). Writing into a leaf that requires grad is thus legal, like
// `with torch.no_grad(): p.copy_(x)` in Python, and the optimizer keeps
// referring to the same tensors. Each loaded parameter and buffer has its
// autograd version counter bumped, so a graph that saved the old values fails
// its backward() instead of silently using the new ones. Do not load while
// another thread runs the model.
//
// This header declares the LibTorch types it uses without including LibTorch
// (<torch/nn/module.h> alone costs ~25 s of compile time); callers include
// <torch/torch.h> or the narrower headers they use anyway.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "tessera/checkpoint.h"
#include "tessera/distributed.h"
#include "tessera/state_dict.h"
#include "tessera/store.h"

namespace torch::nn {
class Module;
}  // namespace torch::nn
namespace torch::optim {
class Optimizer;
}  // namespace torch::optim

namespace tessera {

// Where a rank's local tensor sits in the global tensor: the box of
// `global_shape` starting at `offsets` (the local tensor's sizes give the
// extent). replica_index/replica_count describe data-parallel copies of the
// same box (replica_count 1 = not replicated).
struct Placement {
  Shape global_shape;
  Shape offsets;
  int64_t replica_index = 0;
  int64_t replica_count = 1;
};

// Called with a parameter's or buffer's qualified module name without the
// prefix ("layers.0.qkv.weight"); nullopt = the tensor is whole (unsharded).
// An empty PlacementFn means every tensor is whole.
using PlacementFn = std::function<std::optional<Placement>(const std::string& param_name)>;

// Adds every parameter and buffer of `m` (recursively, as named_parameters()
// and named_buffers() name them) as "<prefix>.<name>" (or "<name>" when
// `prefix` is empty): whole tensors, or shards where `placement` says so.
// Undefined tensors (e.g. a Linear's absent bias) are skipped. Throws
// InvalidArgument naming the tensor for unsupported tensors or placements.
void add_module(StateDict& sd, const std::string& prefix, const torch::nn::Module& m,
                const PlacementFn& placement = {});

// Adds the state of `opt` (torch::optim::SGD, Adam or AdamW; InvalidArgument
// for others). Every parameter of `opt` must be a parameter of `m`, whose
// qualified names key the state. With P = "<prefix>.state.<param name>.":
//   Adam, AdamW: P"step" (int), P"exp_avg", P"exp_avg_sq", and
//                P"max_exp_avg_sq" where the group has amsgrad;
//   SGD with momentum != 0: P"momentum_buffer", P"has_momentum_buffer" (int 0/1:
//                whether LibTorch has created it yet).
// State tensors take `placement` of their parameter. Values, with
// G = "<prefix>.param_groups.<i>.": G"params" (the parameters' names, one per
// line), G"lr", G"eps", G"weight_decay", G"betas.0", G"betas.1", G"amsgrad"
// (Adam/AdamW); G"lr", G"momentum", G"dampening", G"weight_decay",
// G"nesterov" (SGD); and "<prefix>.type" ("sgd", "adam", "adamw").
//
// The optimizer is not modified (except that existing Adam state lacking
// max_exp_avg_sq gets a zero one where its group has amsgrad, as LibTorch's
// step would need). Parameters that have no state yet (LibTorch
// creates it on the first step) get zero tensors shaped like the parameter:
// a save writes them (what a first step would start from), and a load fills
// them and installs them into opt.state() when their bytes have landed.
// The optimizer must outlive the state dict.
void add_optimizer(StateDict& sd, const std::string& prefix, torch::optim::Optimizer& opt,
                   const torch::nn::Module& m, const PlacementFn& placement = {});

// After a load of a state dict built by add_optimizer: sets the loaded steps
// and hyperparameters into `opt` and drops SGD momentum buffers the saved
// optimizer had not created yet. Throws InvalidArgument when the checkpoint's
// optimizer type or a param group's parameters differ from `opt`'s, or when it
// needs state the load could not fill (amsgrad, momentum turned on).
void apply_optimizer_values(const StateDict& sd, const std::string& prefix, torch::optim::Optimizer& opt,
                            const torch::nn::Module& m);

// The default CPU generator's state (torch.get_rng_state()) as a Bytes value;
// restore_rng_state sets it back from a loaded state dict.
void add_rng_state(StateDict& sd, const std::string& name);
void restore_rng_state(const StateDict& sd, const std::string& name);

// Where training stands, as values "<prefix>.epoch", "<prefix>.step" (int)
// and "<prefix>.data_position" (string, e.g. a data loader's cursor).
struct TrainingProgress {
  int64_t epoch = 0;
  int64_t step = 0;
  std::string data_position;
  bool operator==(const TrainingProgress&) const = default;
};
void add_progress(StateDict& sd, const std::string& prefix, const TrainingProgress& progress);
TrainingProgress read_progress(const StateDict& sd, const std::string& prefix);

// An object that checkpoints itself, like DCP's Stateful.
class Stateful {
 public:
  virtual ~Stateful();
  // Registers the entries; called for save (they are read) and for load
  // (they are filled in place).
  virtual void state_dict(StateDict& sd) = 0;
  // Applies what a load filled in (values, optimizer steps, RNG).
  virtual void load_state_dict(const StateDict& sd) { (void)sd; }
};

// save(): state_dict(), then tessera::save (distributed with options.plane
// set: tessera/distributed.h). load(): state_dict(), tessera::load, then
// load_state_dict().
SaveResult save(Stateful& state, Store& store, const std::string& checkpoint, const SaveOptions& options = {});
LoadResult load(Stateful& state, const Store& store, const std::string& checkpoint,
                const LoadOptions& options = {});

// The AppState of DCP's examples: a model, optionally its optimizer, the
// training progress and the CPU RNG state. Keys: "model.*", "optim.*",
// "progress.*", "rng.cpu". `model` and `optimizer` must outlive it.
class AppState : public Stateful {
 public:
  explicit AppState(torch::nn::Module& model, PlacementFn placement = {});
  AppState(torch::nn::Module& model, torch::optim::Optimizer& optimizer, PlacementFn placement = {});

  TrainingProgress progress;
  bool include_rng = true;  // save and restore the default CPU generator's state

  void state_dict(StateDict& sd) override;
  void load_state_dict(const StateDict& sd) override;

 private:
  torch::nn::Module& model_;
  torch::optim::Optimizer* optimizer_ = nullptr;
  PlacementFn placement_;
};

}  // namespace tessera
