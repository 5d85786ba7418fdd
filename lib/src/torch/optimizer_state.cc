// Optimizer state (SGD, Adam, AdamW) as state-dict entries, and applying the
// loaded values (add_optimizer, apply_optimizer_values in tessera/module.h).
#include <torch/torch.h>

#include <c10/util/Type.h>

#include <functional>
#include <memory>
#include <unordered_map>

#include "tessera/error.h"
#include "tessera/module.h"
#include "torch/module_state.h"
#include "torch/state_keys.h"

namespace tessera {
namespace {

namespace optim = torch::optim;

enum class OptKind { kSgd, kAdam, kAdamW };

const char* kind_name(OptKind k) {
  switch (k) {
    case OptKind::kSgd: return "sgd";
    case OptKind::kAdam: return "adam";
    case OptKind::kAdamW: return "adamw";
  }
  return "?";
}

OptKind kind_of(const optim::Optimizer& opt) {
  if (dynamic_cast<const optim::SGD*>(&opt)) return OptKind::kSgd;
  if (dynamic_cast<const optim::Adam*>(&opt)) return OptKind::kAdam;
  if (dynamic_cast<const optim::AdamW*>(&opt)) return OptKind::kAdamW;
  throw InvalidArgument("optimizer " + c10::demangle(typeid(opt).name()) +
                        " is not supported: tessera saves the state of torch::optim::SGD, Adam and AdamW");
}

using NameMap = std::unordered_map<const c10::TensorImpl*, std::string>;

// Qualified names of the module's parameters; a tied parameter keeps its first name.
NameMap param_names(const torch::nn::Module& m) {
  NameMap names;
  for (const auto& p : m.named_parameters(/*recurse=*/true))
    if (p.value().defined()) names.emplace(p.value().unsafeGetTensorImpl(), p.key());
  return names;
}

const std::string& name_of(const NameMap& names, const at::Tensor& p, size_t group, size_t index) {
  auto it = names.find(p.unsafeGetTensorImpl());
  if (it == names.end())
    throw InvalidArgument("optimizer param group " + std::to_string(group) + ", parameter " + std::to_string(index) +
                          " (shape " + c10::str(p.sizes()) + ") is not a parameter of the module given");
  return it->second;
}

std::string group_params(const optim::OptimizerParamGroup& group, const NameMap& names, size_t g) {
  std::string s;
  for (size_t k = 0; k < group.params().size(); ++k) s += (k ? "\n" : "") + name_of(names, group.params()[k], g, k);
  return s;
}

// State that a load fills before LibTorch has created it: installed into the
// optimizer when the first of its tensors has landed.
struct PendingState {
  optim::Optimizer* opt = nullptr;
  void* key = nullptr;
  std::unique_ptr<optim::OptimizerParamState> state;
  void install() {
    if (state) opt->state()[key] = std::move(state);
  }
};

void add_state_tensor(StateDict& sd, const std::string& key, const at::Tensor& t,
                      const std::optional<Placement>& placement, const std::shared_ptr<PendingState>& pending) {
  std::function<void()> install;
  if (pending) install = [pending] { pending->install(); };
  sd.add_tensor(key, in_place_entry(key, t, placement, std::move(install)));
}

at::Tensor zeros_like_param(const at::Tensor& p) {
  torch::NoGradGuard no_grad;
  return torch::zeros_like(p, at::MemoryFormat::Preserve);
}

template <class State, class Options>
void add_adam_param(StateDict& sd, const std::string& sp, optim::Optimizer& opt, const at::Tensor& p,
                    const Options& options, const std::optional<Placement>& placement) {
  void* key = p.unsafeGetTensorImpl();
  std::shared_ptr<PendingState> pending;
  State* st = nullptr;
  if (auto it = opt.state().find(key); it != opt.state().end()) {
    st = dynamic_cast<State*>(it->second.get());
    if (!st) throw InvalidArgument("optimizer state of '" + sp + "' has an unexpected type");
  } else {
    auto fresh = std::make_unique<State>();
    st = fresh.get();
    pending = std::make_shared<PendingState>();
    pending->opt = &opt;
    pending->key = key;
    pending->state = std::move(fresh);
  }
  if (!st->exp_avg().defined()) st->exp_avg(zeros_like_param(p));
  if (!st->exp_avg_sq().defined()) st->exp_avg_sq(zeros_like_param(p));
  sd.add_value(sp + "step", int64_t{st->step()});
  add_state_tensor(sd, sp + "exp_avg", st->exp_avg(), placement, pending);
  add_state_tensor(sd, sp + "exp_avg_sq", st->exp_avg_sq(), placement, pending);
  if (options.amsgrad()) {
    if (!st->max_exp_avg_sq().defined()) st->max_exp_avg_sq(zeros_like_param(p));
    add_state_tensor(sd, sp + "max_exp_avg_sq", st->max_exp_avg_sq(), placement, pending);
  }
}

void add_sgd_param(StateDict& sd, const std::string& sp, optim::Optimizer& opt, const at::Tensor& p,
                   const optim::SGDOptions& options, const std::optional<Placement>& placement) {
  if (options.momentum() == 0) return;  // LibTorch keeps no state then
  void* key = p.unsafeGetTensorImpl();
  at::Tensor buffer;
  if (auto it = opt.state().find(key); it != opt.state().end()) {
    auto* st = dynamic_cast<optim::SGDParamState*>(it->second.get());
    if (!st) throw InvalidArgument("optimizer state of '" + sp + "' has an unexpected type");
    buffer = st->momentum_buffer();
  }
  std::shared_ptr<PendingState> pending;
  const bool has = buffer.defined();
  if (!has) {
    buffer = zeros_like_param(p);
    auto fresh = std::make_unique<optim::SGDParamState>();
    fresh->momentum_buffer(buffer);
    pending = std::make_shared<PendingState>();
    pending->opt = &opt;
    pending->key = key;
    pending->state = std::move(fresh);
  }
  sd.add_value(sp + "has_momentum_buffer", int64_t{has ? 1 : 0});
  add_state_tensor(sd, sp + "momentum_buffer", buffer, placement, pending);
}

template <class Options>
void add_adam_group_values(StateDict& sd, const std::string& gp, const Options& o) {
  sd.add_value(gp + "lr", o.lr());
  sd.add_value(gp + "betas.0", std::get<0>(o.betas()));
  sd.add_value(gp + "betas.1", std::get<1>(o.betas()));
  sd.add_value(gp + "eps", o.eps());
  sd.add_value(gp + "weight_decay", o.weight_decay());
  sd.add_value(gp + "amsgrad", int64_t{o.amsgrad() ? 1 : 0});
}

void add_sgd_group_values(StateDict& sd, const std::string& gp, const optim::SGDOptions& o) {
  sd.add_value(gp + "lr", o.lr());
  sd.add_value(gp + "momentum", o.momentum());
  sd.add_value(gp + "dampening", o.dampening());
  sd.add_value(gp + "weight_decay", o.weight_decay());
  sd.add_value(gp + "nesterov", int64_t{o.nesterov() ? 1 : 0});
}

template <class Options>
Options& options_as(optim::OptimizerParamGroup& group, size_t g) {
  auto* o = dynamic_cast<Options*>(&group.options());
  if (!o) throw InvalidArgument("optimizer param group " + std::to_string(g) + " has options of an unexpected type");
  return *o;
}

// A value the load filled, or nothing when the state dict lacks it (a
// non-strict load keeps what add_optimizer registered: the current value).
template <class T>
std::optional<T> loaded(const StateDict& sd, const std::string& key) {
  if (!sd.contains(key)) return std::nullopt;
  return value_as<T>(sd, key);
}

template <class Options, class State>
void apply_adam(const StateDict& sd, const std::string& gp, const std::string& prefix, optim::Optimizer& opt,
                optim::OptimizerParamGroup& group, Options& o, const NameMap& names, size_t g) {
  if (auto v = loaded<double>(sd, gp + "lr")) o.lr(*v);
  auto b0 = loaded<double>(sd, gp + "betas.0"), b1 = loaded<double>(sd, gp + "betas.1");
  o.betas(std::make_tuple(b0.value_or(std::get<0>(o.betas())), b1.value_or(std::get<1>(o.betas()))));
  if (auto v = loaded<double>(sd, gp + "eps")) o.eps(*v);
  if (auto v = loaded<double>(sd, gp + "weight_decay")) o.weight_decay(*v);
  if (auto v = loaded<int64_t>(sd, gp + "amsgrad")) o.amsgrad(*v != 0);
  for (size_t k = 0; k < group.params().size(); ++k) {
    const at::Tensor& p = group.params()[k];
    auto step = loaded<int64_t>(sd, prefix + ".state." + name_of(names, p, g, k) + ".step");
    auto it = opt.state().find(p.unsafeGetTensorImpl());
    if (step && it != opt.state().end()) static_cast<State&>(*it->second).step(*step);
  }
}

void apply_sgd(const StateDict& sd, const std::string& gp, const std::string& prefix, optim::Optimizer& opt,
               optim::OptimizerParamGroup& group, optim::SGDOptions& o, const NameMap& names, size_t g) {
  const bool had_momentum = o.momentum() != 0;
  if (auto v = loaded<double>(sd, gp + "lr")) o.lr(*v);
  if (auto v = loaded<double>(sd, gp + "momentum")) o.momentum(*v);
  if (auto v = loaded<double>(sd, gp + "dampening")) o.dampening(*v);
  if (auto v = loaded<double>(sd, gp + "weight_decay")) o.weight_decay(*v);
  if (auto v = loaded<int64_t>(sd, gp + "nesterov")) o.nesterov(*v != 0);
  if (!had_momentum) return;
  for (size_t k = 0; k < group.params().size(); ++k) {
    const at::Tensor& p = group.params()[k];
    auto has = loaded<int64_t>(sd, prefix + ".state." + name_of(names, p, g, k) + ".has_momentum_buffer");
    // The saved optimizer had not created this buffer: neither has this one,
    // so its first step starts the buffer as LibTorch does (from the gradient).
    if (has && *has == 0) opt.state().erase(p.unsafeGetTensorImpl());
  }
}

}  // namespace

void add_optimizer(StateDict& sd, const std::string& prefix, optim::Optimizer& opt, const torch::nn::Module& m,
                   const PlacementFn& placement) {
  const OptKind kind = kind_of(opt);
  const NameMap names = param_names(m);
  sd.add_value(join(prefix, "type"), std::string(kind_name(kind)));
  auto& groups = opt.param_groups();
  for (size_t g = 0; g < groups.size(); ++g) {
    auto& group = groups[g];
    const std::string gp = join(prefix, "param_groups." + std::to_string(g) + ".");
    sd.add_value(gp + "params", group_params(group, names, g));
    switch (kind) {
      case OptKind::kSgd: add_sgd_group_values(sd, gp, options_as<optim::SGDOptions>(group, g)); break;
      case OptKind::kAdam: add_adam_group_values(sd, gp, options_as<optim::AdamOptions>(group, g)); break;
      case OptKind::kAdamW: add_adam_group_values(sd, gp, options_as<optim::AdamWOptions>(group, g)); break;
    }
    for (size_t k = 0; k < group.params().size(); ++k) {
      const at::Tensor& p = group.params()[k];
      const std::string& name = name_of(names, p, g, k);
      const std::string sp = join(prefix, "state." + name + ".");
      const std::optional<Placement> pl = placement ? placement(name) : std::nullopt;
      switch (kind) {
        case OptKind::kSgd:
          add_sgd_param(sd, sp, opt, p, options_as<optim::SGDOptions>(group, g), pl);
          break;
        case OptKind::kAdam:
          add_adam_param<optim::AdamParamState>(sd, sp, opt, p, options_as<optim::AdamOptions>(group, g), pl);
          break;
        case OptKind::kAdamW:
          add_adam_param<optim::AdamWParamState>(sd, sp, opt, p, options_as<optim::AdamWOptions>(group, g), pl);
          break;
      }
    }
  }
}

void apply_optimizer_values(const StateDict& sd, const std::string& prefix, optim::Optimizer& opt,
                            const torch::nn::Module& m) {
  const OptKind kind = kind_of(opt);
  const NameMap names = param_names(m);
  const std::string where = "optimizer '" + prefix + "'";
  if (auto type = loaded<std::string>(sd, join(prefix, "type")); type && *type != kind_name(kind))
    throw InvalidArgument(where + ": the checkpoint holds " + *type + " state, the optimizer is " + kind_name(kind));
  auto& groups = opt.param_groups();
  // Check every group before changing any.
  for (size_t g = 0; g < groups.size(); ++g) {
    auto& group = groups[g];
    const std::string gp = join(prefix, "param_groups." + std::to_string(g) + ".");
    if (auto saved = loaded<std::string>(sd, gp + "params"); saved && *saved != group_params(group, names, g))
      throw InvalidArgument(where + ", param group " + std::to_string(g) + ": the checkpoint's group holds " +
                            "parameters [" + *saved + "], the optimizer's [" + group_params(group, names, g) + "]");
    auto need = [&](const char* what, const char* state, bool saved_on, bool now_on) {
      if (saved_on && !now_on)
        throw InvalidArgument(where + ", param group " + std::to_string(g) + ": the checkpoint has " + what +
                              " on, the optimizer off, so its " + state +
                              " was not loaded; build the optimizer with it on");
    };
    switch (kind) {
      case OptKind::kSgd:
        need("momentum", "momentum_buffer", loaded<double>(sd, gp + "momentum").value_or(0) != 0,
             options_as<optim::SGDOptions>(group, g).momentum() != 0);
        break;
      case OptKind::kAdam:
        need("amsgrad", "max_exp_avg_sq", loaded<int64_t>(sd, gp + "amsgrad").value_or(0) != 0,
             options_as<optim::AdamOptions>(group, g).amsgrad());
        break;
      case OptKind::kAdamW:
        need("amsgrad", "max_exp_avg_sq", loaded<int64_t>(sd, gp + "amsgrad").value_or(0) != 0,
             options_as<optim::AdamWOptions>(group, g).amsgrad());
        break;
    }
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    auto& group = groups[g];
    const std::string gp = join(prefix, "param_groups." + std::to_string(g) + ".");
    switch (kind) {
      case OptKind::kSgd:
        apply_sgd(sd, gp, prefix, opt, group, options_as<optim::SGDOptions>(group, g), names, g);
        break;
      case OptKind::kAdam:
        apply_adam<optim::AdamOptions, optim::AdamParamState>(sd, gp, prefix, opt, group,
                                                             options_as<optim::AdamOptions>(group, g), names, g);
        break;
      case OptKind::kAdamW:
        apply_adam<optim::AdamWOptions, optim::AdamWParamState>(sd, gp, prefix, opt, group,
                                                               options_as<optim::AdamWOptions>(group, g), names, g);
        break;
    }
  }
}

}  // namespace tessera
