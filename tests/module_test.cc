// Module and optimizer state (tessera/module.h): a small torch::nn model with
// AdamW, Adam (two groups, amsgrad) and SGD with momentum saved, loaded into
// fresh objects, and trained on bit-identically; tensor-parallel shard loads;
// the error messages.
#include <torch/torch.h>

#include "tessera/checkpoint.h"
#include "tessera/error.h"
#include "tessera/module.h"
#include "tessera/torch.h"
#include "test_util.h"
#include "torch_util.h"

#include <doctest/doctest.h>  // after the torch headers (see toolchain.md)

using namespace tessera;
using tessera::test::error_of;
using tessera::test::same_bits;
using tessera::test::TempDir;
namespace optim = torch::optim;

namespace {

// Embedding -> LayerNorm -> residual MLP -> BatchNorm (buffers) -> head.
// `hidden` is the MLP width: 16 for the whole model, 8 for one of two
// tensor-parallel ranks (mlp.0 split by output rows, mlp.2 by input columns).
struct NetImpl : torch::nn::Module {
  explicit NetImpl(int64_t hidden = 16, int64_t vocab = 16, int64_t dim = 8) {
    embed = register_module("embed", torch::nn::Embedding(vocab, dim));
    norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
    mlp = register_module("mlp", torch::nn::Sequential(torch::nn::Linear(dim, hidden), torch::nn::ReLU(),
                                                       torch::nn::Linear(hidden, dim)));
    bn = register_module("bn", torch::nn::BatchNorm1d(dim));
    head = register_module("head", torch::nn::Linear(dim, vocab));
  }
  torch::Tensor forward(const torch::Tensor& ids) {
    torch::Tensor x = norm(embed(ids));
    x = x + mlp->forward(x);
    return head(bn(x));
  }
  torch::nn::Embedding embed{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Sequential mlp{nullptr};
  torch::nn::BatchNorm1d bn{nullptr};
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(Net);

// One training step on batch `i` (the same data for every model).
void train_step(Net& net, optim::Optimizer& opt, int64_t i) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(100 + i);
  at::Tensor ids = at::randint(0, 16, {32}, gen, at::TensorOptions().dtype(at::kLong));
  at::Tensor targets = at::randint(0, 16, {32}, gen, at::TensorOptions().dtype(at::kLong));
  opt.zero_grad();
  torch::Tensor loss = torch::nn::functional::cross_entropy(net->forward(ids), targets);
  loss.backward();
  opt.step();
}

// Parameters and buffers by qualified name.
std::map<std::string, at::Tensor> tensors_of(const Net& net) {
  std::map<std::string, at::Tensor> out;
  for (const auto& p : net->named_parameters()) out[p.key()] = p.value();
  for (const auto& b : net->named_buffers()) out[b.key()] = b.value();
  return out;
}

// Names of tensors whose bits differ between two models of one shape.
std::vector<std::string> differing(const Net& a, const Net& b) {
  auto ta = tensors_of(a), tb = tensors_of(b);
  std::vector<std::string> out;
  for (const auto& [name, t] : ta)
    if (!tb.count(name) || !same_bits(t, tb[name])) out.push_back(name);
  return out;
}

void check_same_model(const Net& a, const Net& b) {
  auto ta = tensors_of(a), tb = tensors_of(b);
  CHECK(ta.size() == tb.size());
  CHECK(ta.size() == 14);  // 11 parameters, 3 BatchNorm buffers
  for (const auto& [name, t] : ta) {
    CAPTURE(name);
    CHECK(same_bits(t, tb[name]));
  }
}

template <class State>
const State* state_of(const optim::Optimizer& opt, const at::Tensor& p) {
  auto it = opt.state().find(p.unsafeGetTensorImpl());
  return it == opt.state().end() ? nullptr : dynamic_cast<const State*>(it->second.get());
}

// Every Adam(W) state tensor and step of every parameter, bit for bit.
template <class State>
void check_same_adam_state(const Net& a, const optim::Optimizer& oa, const Net& b, const optim::Optimizer& ob,
                           bool amsgrad) {
  auto pb = b->named_parameters();
  int n = 0;
  for (const auto& p : a->named_parameters()) {
    CAPTURE(p.key());
    const State* sa = state_of<State>(oa, p.value());
    const State* sb = state_of<State>(ob, pb[p.key()]);
    REQUIRE(sa != nullptr);
    REQUIRE(sb != nullptr);
    CHECK(sa->step() == sb->step());
    CHECK(same_bits(sa->exp_avg(), sb->exp_avg()));
    CHECK(same_bits(sa->exp_avg_sq(), sb->exp_avg_sq()));
    if (amsgrad) CHECK(same_bits(sa->max_exp_avg_sq(), sb->max_exp_avg_sq()));
    ++n;
  }
  CHECK(n == 11);
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

optim::AdamWOptions& adamw_options(optim::Optimizer& opt, size_t g = 0) {
  return static_cast<optim::AdamWOptions&>(opt.param_groups()[g].options());
}

// A: seed 1, AdamW, two steps, lr changed as a scheduler would; saved as "step-2".
struct Trained {
  Net net{nullptr};
  std::unique_ptr<optim::AdamW> opt;
  TrainingProgress progress{3, 2, "shard-7:offset-1234"};
  at::Tensor next_random;  // what the RNG drew right after the save
};

Trained train_and_save(Store& store) {
  torch::manual_seed(1);
  Trained t;
  t.net = Net();
  t.opt = std::make_unique<optim::AdamW>(
      t.net->parameters(), optim::AdamWOptions(0.01).betas({0.9, 0.95}).eps(1e-7).weight_decay(0.1));
  train_step(t.net, *t.opt, 0);
  train_step(t.net, *t.opt, 1);
  adamw_options(*t.opt).lr(0.007);
  AppState app(*t.net, *t.opt);
  app.progress = t.progress;
  save(app, store, "step-2");
  t.next_random = torch::rand({4});
  return t;
}

// Tensor-parallel placement for rank `rank` of 2 (hidden 16 split in halves).
PlacementFn tp_placement(int64_t rank) {
  return [rank](const std::string& name) -> std::optional<Placement> {
    if (name == "mlp.0.weight") return Placement{{16, 8}, {8 * rank, 0}};
    if (name == "mlp.0.bias") return Placement{{16}, {8 * rank}};
    if (name == "mlp.2.weight") return Placement{{8, 16}, {0, 8 * rank}};
    return std::nullopt;
  };
}

// The box of `full` that `local` holds under `placement`.
at::Tensor box_of(const at::Tensor& full, const at::Tensor& local, const std::optional<Placement>& placement) {
  if (!placement) return full;
  at::Tensor t = full;
  for (int64_t d = 0; d < full.dim(); ++d) t = t.narrow(d, placement->offsets[d], local.size(d));
  return t;
}

}  // namespace

TEST_CASE("AppState with AdamW: a fresh model and optimizer resume bit-identically") {
  TempDir dir("module");
  Store store = Store::open(dir.path());
  Trained a = train_and_save(store);

  torch::manual_seed(2);
  Net b;
  optim::AdamW ob(b->parameters(), optim::AdamWOptions(0.5).betas({0.5, 0.6}).eps(1e-3).weight_decay(0.0));
  // Before the load everything differs (so the checks below can fail).
  CHECK(differing(a.net, b).size() == 14);  // every parameter and BatchNorm buffer
  CHECK(ob.state().empty());
  CHECK(adamw_options(ob).lr() != adamw_options(*a.opt).lr());

  AppState app(*b, ob);
  LoadResult r = load(app, store, "step-2");
  CHECK(r.missing_keys.empty());
  CHECK(r.unexpected_keys.empty());
  CHECK(differing(a.net, b).empty());
  check_same_model(a.net, b);
  check_same_adam_state<optim::AdamWParamState>(a.net, *a.opt, b, ob, false);
  CHECK(state_of<optim::AdamWParamState>(ob, b->head->weight)->step() == 2);
  // The optimizer still updates the model's own parameters.
  CHECK(ob.param_groups()[0].params()[0].unsafeGetTensorImpl() ==
        b->named_parameters()[0].value().unsafeGetTensorImpl());
  // Hyperparameters, progress and the RNG.
  const auto &oa = adamw_options(*a.opt), &o = adamw_options(ob);
  CHECK(o.lr() == 0.007);
  CHECK(o.lr() == oa.lr());
  CHECK(o.betas() == oa.betas());
  CHECK(o.eps() == oa.eps());
  CHECK(o.weight_decay() == oa.weight_decay());
  CHECK(o.amsgrad() == oa.amsgrad());
  CHECK(app.progress == a.progress);
  CHECK(same_bits(torch::rand({4}), a.next_random));

  // One more step on both: bit-identical only if the optimizer state came back.
  train_step(a.net, *a.opt, 2);
  train_step(b, ob, 2);
  CHECK(differing(a.net, b).empty());
  check_same_adam_state<optim::AdamWParamState>(a.net, *a.opt, b, ob, false);
}

TEST_CASE("keys: qualified parameter names, state keyed by parameter, hyperparameters as values") {
  torch::manual_seed(3);
  Net net;
  optim::AdamW opt(net->parameters(), optim::AdamWOptions(0.01));
  train_step(net, opt, 0);
  StateDict sd;
  add_module(sd, "model", *net);
  add_optimizer(sd, "optim", opt, *net);
  CHECK(sd.contains("model.mlp.0.weight"));
  CHECK(sd.contains("model.bn.running_mean"));
  CHECK(sd.contains("model.bn.num_batches_tracked"));
  CHECK(sd.contains("optim.state.mlp.2.weight.exp_avg"));
  CHECK(sd.contains("optim.state.mlp.2.weight.exp_avg_sq"));
  CHECK_FALSE(sd.contains("optim.state.mlp.2.weight.max_exp_avg_sq"));  // no amsgrad
  CHECK(std::get<int64_t>(sd.value("optim.state.embed.weight.step")) == 1);
  CHECK(std::get<double>(sd.value("optim.param_groups.0.lr")) == 0.01);
  CHECK(std::get<double>(sd.value("optim.param_groups.0.betas.1")) == 0.999);
  CHECK(std::get<std::string>(sd.value("optim.type")) == "adamw");
  CHECK(contains(std::get<std::string>(sd.value("optim.param_groups.0.params")), "embed.weight\nnorm.weight\n"));
  // 14 tensors + 11 * (2 tensors + step) + type + 7 group values.
  CHECK(sd.size() == 14 + 33 + 1 + 7);
  // The entries are the tensors themselves (no copies).
  CHECK(sd.tensor("model.head.weight").view.data ==
        static_cast<std::byte*>(net->head->weight.data_ptr()));
  // Without a prefix the keys are the module's names.
  StateDict bare;
  add_module(bare, "", *net);
  CHECK(bare.contains("head.bias"));
}

TEST_CASE("SGD with momentum and dampening: buffers and hyperparameters restored") {
  TempDir dir("module");
  Store store = Store::open(dir.path());
  torch::manual_seed(4);
  Net a;
  optim::SGD oa(a->parameters(), optim::SGDOptions(0.1).momentum(0.9).dampening(0.1).weight_decay(0.01));
  train_step(a, oa, 0);
  train_step(a, oa, 1);
  StateDict sd;
  add_module(sd, "model", *a);
  add_optimizer(sd, "optim", oa, *a);
  CHECK(std::get<int64_t>(sd.value("optim.state.head.weight.has_momentum_buffer")) == 1);
  save(sd, store, "sgd");

  torch::manual_seed(5);
  Net b;
  optim::SGD ob(b->parameters(), optim::SGDOptions(0.3).momentum(0.5).nesterov(true));
  CHECK(differing(a, b).size() == 14);
  CHECK(ob.state().empty());
  StateDict ld;
  add_module(ld, "model", *b);
  add_optimizer(ld, "optim", ob, *b);
  CHECK(ob.state().empty());  // registering does not touch the optimizer
  load(ld, store, "sgd");
  apply_optimizer_values(ld, "optim", ob, *b);
  CHECK(differing(a, b).empty());
  auto pb = b->named_parameters();
  int n = 0;
  for (const auto& p : a->named_parameters()) {
    CAPTURE(p.key());
    auto* sa = state_of<optim::SGDParamState>(oa, p.value());
    auto* sb = state_of<optim::SGDParamState>(ob, pb[p.key()]);
    REQUIRE(sa != nullptr);
    REQUIRE(sb != nullptr);
    CHECK(same_bits(sa->momentum_buffer(), sb->momentum_buffer()));
    ++n;
  }
  CHECK(n == 11);
  const auto& o = static_cast<optim::SGDOptions&>(ob.param_groups()[0].options());
  CHECK(o.lr() == 0.1);
  CHECK(o.momentum() == 0.9);
  CHECK(o.dampening() == 0.1);
  CHECK(o.weight_decay() == 0.01);
  CHECK_FALSE(o.nesterov());

  train_step(a, oa, 2);
  train_step(b, ob, 2);
  CHECK(differing(a, b).empty());
}

TEST_CASE("SGD saved before its first step: the loaded optimizer creates its buffers as LibTorch does") {
  TempDir dir("module");
  Store store = Store::open(dir.path());
  torch::manual_seed(6);
  Net a;
  // With dampening, a zero buffer would make the first step differ from LibTorch's (buffer = gradient).
  optim::SGD oa(a->parameters(), optim::SGDOptions(0.1).momentum(0.9).dampening(0.5));
  AppState app_a(*a, oa);
  save(app_a, store, "fresh");
  CHECK(oa.state().empty());  // saving did not create state

  torch::manual_seed(7);
  Net b;
  optim::SGD ob(b->parameters(), optim::SGDOptions(0.1).momentum(0.9).dampening(0.5));
  AppState app_b(*b, ob);
  load(app_b, store, "fresh");
  CHECK(ob.state().empty());
  CHECK(differing(a, b).empty());
  train_step(a, oa, 0);
  train_step(b, ob, 0);
  CHECK(oa.state().size() == 11);
  CHECK(differing(a, b).empty());
  train_step(a, oa, 1);
  train_step(b, ob, 1);
  CHECK(differing(a, b).empty());
}

TEST_CASE("Adam with two param groups, amsgrad in one") {
  TempDir dir("module");
  Store store = Store::open(dir.path());
  auto make = [](Net& net, double lr0, double lr1, bool amsgrad) {
    std::vector<at::Tensor> first, rest;
    for (const auto& p : net->named_parameters())
      (p.key().rfind("embed.", 0) == 0 || p.key().rfind("norm.", 0) == 0 ? first : rest).push_back(p.value());
    std::vector<optim::OptimizerParamGroup> groups;
    groups.emplace_back(first, std::make_unique<optim::AdamOptions>(optim::AdamOptions(lr0)));
    groups.emplace_back(rest, std::make_unique<optim::AdamOptions>(optim::AdamOptions(lr1).amsgrad(amsgrad)));
    return std::make_unique<optim::Adam>(groups, optim::AdamOptions(1e-3));
  };
  torch::manual_seed(8);
  Net a;
  auto oa = make(a, 0.01, 0.02, true);
  train_step(a, *oa, 0);
  train_step(a, *oa, 1);
  train_step(a, *oa, 2);
  AppState app_a(*a, *oa);
  save(app_a, store, "adam");

  torch::manual_seed(9);
  Net b;
  auto ob = make(b, 0.5, 0.6, true);
  AppState app_b(*b, *ob);
  load(app_b, store, "adam");
  check_same_model(a, b);
  auto pb = b->named_parameters();
  for (const auto& p : a->named_parameters()) {
    CAPTURE(p.key());
    auto* sa = state_of<optim::AdamParamState>(*oa, p.value());
    auto* sb = state_of<optim::AdamParamState>(*ob, pb[p.key()]);
    REQUIRE(sa != nullptr);
    REQUIRE(sb != nullptr);
    CHECK(sb->step() == 3);
    CHECK(same_bits(sa->exp_avg(), sb->exp_avg()));
    CHECK(same_bits(sa->exp_avg_sq(), sb->exp_avg_sq()));
    // Group 1 has amsgrad: its maxima are state too.
    CHECK(sa->max_exp_avg_sq().defined() == sb->max_exp_avg_sq().defined());
    if (sa->max_exp_avg_sq().defined()) CHECK(same_bits(sa->max_exp_avg_sq(), sb->max_exp_avg_sq()));
  }
  CHECK(state_of<optim::AdamParamState>(*ob, b->head->weight)->max_exp_avg_sq().defined());
  CHECK(ob->param_groups()[0].options().get_lr() == 0.01);
  CHECK(ob->param_groups()[1].options().get_lr() == 0.02);
  train_step(a, *oa, 3);
  train_step(b, *ob, 3);
  CHECK(differing(a, b).empty());

  // Loading into an optimizer built without amsgrad: its max_exp_avg_sq could not be loaded.
  torch::manual_seed(10);
  Net c;
  auto oc = make(c, 0.5, 0.6, false);
  AppState app_c(*c, *oc);
  std::string err = error_of([&] { load(app_c, store, "adam"); });
  CAPTURE(err);
  CHECK(contains(err, "optimizer 'optim', param group 1: the checkpoint has amsgrad on"));
  // Groups split differently: the hyperparameters would go to the wrong parameters.
  Net d;
  std::vector<at::Tensor> most, heads;
  for (const auto& p : d->named_parameters()) (p.key().rfind("head.", 0) == 0 ? heads : most).push_back(p.value());
  optim::Adam od(most, optim::AdamOptions(0.5));
  od.add_param_group(optim::OptimizerParamGroup(heads, std::make_unique<optim::AdamOptions>(0.1)));
  AppState app_d(*d, od);
  err = error_of([&] { load(app_d, store, "adam"); });
  CAPTURE(err);
  CHECK(contains(err, "param group 0: the checkpoint's group holds parameters [embed.weight\nnorm.weight"));
}

TEST_CASE("tensor-parallel load: each rank loads its halves of the weights and of their optimizer state") {
  TempDir dir("module");
  Store store = Store::open(dir.path());
  Trained a = train_and_save(store);
  auto full = tensors_of(a.net);
  for (int64_t rank = 0; rank < 2; ++rank) {
    CAPTURE(rank);
    torch::manual_seed(20 + rank);
    Net c(/*hidden=*/8);
    optim::AdamW oc(c->parameters(), optim::AdamWOptions(0.5));
    const PlacementFn placement = tp_placement(rank);
    StateDict ld;
    add_module(ld, "model", *c, placement);
    add_optimizer(ld, "optim", oc, *c, placement);
    CHECK(ld.tensor("model.mlp.2.weight").view.global_shape == Shape{8, 16});
    CHECK(ld.tensor("optim.state.mlp.2.weight.exp_avg").view.offsets == Shape{0, 8 * rank});
    LoadResult r = load(ld, store, "step-2");
    CHECK(r.missing_keys.empty());
    CHECK(std::find(r.unexpected_keys.begin(), r.unexpected_keys.end(), "rng.cpu") != r.unexpected_keys.end());
    apply_optimizer_values(ld, "optim", oc, *c);
    int sharded = 0;
    auto pa = a.net->named_parameters();
    for (const auto& [name, local] : tensors_of(c)) {
      CAPTURE(name);
      auto pl = placement(name);
      sharded += pl.has_value();
      at::Tensor want = box_of(full.at(name), local, pl);
      CHECK(local.sizes() == want.sizes());
      CHECK(same_bits(local, want));
      if (!pa.contains(name)) continue;  // a buffer
      auto* sa = state_of<optim::AdamWParamState>(*a.opt, pa[name]);
      auto* sc = state_of<optim::AdamWParamState>(oc, local);
      REQUIRE(sc != nullptr);
      CHECK(sc->step() == 2);
      CHECK(same_bits(sc->exp_avg(), box_of(sa->exp_avg(), local, pl)));
      CHECK(same_bits(sc->exp_avg_sq(), box_of(sa->exp_avg_sq(), local, pl)));
    }
    CHECK(sharded == 3);
    CHECK(adamw_options(oc).lr() == 0.007);
    // The two ranks hold different halves.
    CHECK_FALSE(same_bits(c->mlp[0]->as<torch::nn::Linear>()->weight,
                          full.at("mlp.0.weight").narrow(0, 8 * (1 - rank), 8)));
  }
}

TEST_CASE("errors name the parameter, the optimizer or the placement") {
  TempDir dir("module");
  Store store = Store::open(dir.path());
  Trained a = train_and_save(store);

  SUBCASE("a parameter of another shape") {
    Net c(/*hidden=*/9);
    optim::AdamW oc(c->parameters());
    AppState app(*c, oc);
    std::string err = error_of([&] { load(app, store, "step-2"); });
    CAPTURE(err);
    CHECK(contains(err, "checkpoint 'step-2', tensor 'model.mlp.0.bias': saved shape [16], target [9]"));
  }
  SUBCASE("a model-only checkpoint loaded with an optimizer") {
    Net c;
    AppState model_only(*c);
    save(model_only, store, "model-only");
    optim::AdamW oc(c->parameters());
    AppState app(*c, oc);
    std::string err = error_of([&] { load(app, store, "model-only"); });
    CAPTURE(err);
    CHECK(contains(err, "has no entries 'optim."));
  }
  SUBCASE("AdamW state into Adam") {
    Net c;
    optim::Adam oc(c->parameters());
    AppState app(*c, oc);
    std::string err = error_of([&] { load(app, store, "step-2"); });
    CAPTURE(err);
    CHECK(contains(err, "optimizer 'optim': the checkpoint holds adamw state, the optimizer is adam"));
  }
  SUBCASE("an unsupported optimizer") {
    Net c;
    optim::RMSprop oc(c->parameters());
    StateDict sd;
    std::string err = error_of([&] { add_optimizer(sd, "optim", oc, *c); });
    CAPTURE(err);
    CHECK(contains(err, "RMSprop is not supported"));
  }
  SUBCASE("an optimizer over tensors the module does not have") {
    Net c;
    std::vector<at::Tensor> params = c->parameters();
    params.push_back(torch::zeros({3, 5}, torch::requires_grad()));
    optim::AdamW oc(params);
    StateDict sd;
    std::string err = error_of([&] { add_optimizer(sd, "optim", oc, *c); });
    CAPTURE(err);
    CHECK(contains(err, "optimizer param group 0, parameter 11 (shape [3, 5]) is not a parameter of the module"));
  }
  SUBCASE("a placement of the wrong rank") {
    Net c;
    StateDict sd;
    PlacementFn bad = [](const std::string& name) -> std::optional<Placement> {
      if (name == "head.weight") return Placement{{16}, {0}};
      return std::nullopt;
    };
    std::string err = error_of([&] { add_module(sd, "model", *c, bad); });
    CAPTURE(err);
    CHECK(contains(err, "tensor 'model.head.weight': placement has 1-D global shape and 1 offsets for a 2-D tensor"));
  }
  SUBCASE("an RNG state that is not one") {
    StateDict sd;
    sd.add_value("rng", Bytes{"not a generator state"});
    std::string err = error_of([&] { restore_rng_state(sd, "rng"); });
    CAPTURE(err);
    CHECK(contains(err, "value 'rng' is not a CPU generator state"));
    sd.add_value("rng", int64_t{5});
    err = error_of([&] { restore_rng_state(sd, "rng"); });
    CAPTURE(err);
    CHECK(contains(err, "value 'rng': expected bytes, found int"));
  }
}

TEST_CASE("loading writes into parameters that require grad: casts and version counters") {
  TempDir dir("module");
  Store store = Store::open(dir.path());
  Trained a = train_and_save(store);

  SUBCASE("allow_cast into a float64 model (a copy_ into each parameter)") {
    Net c;
    c->to(torch::kDouble);
    CHECK(c->head->weight.requires_grad());
    StateDict ld;
    add_module(ld, "model", *c);
    LoadOptions options;
    options.allow_cast = true;
    load(ld, store, "step-2", options);
    auto full = tensors_of(a.net);
    for (const auto& [name, t] : tensors_of(c)) {
      CAPTURE(name);
      CHECK(same_bits(t, full.at(name).to(t.scalar_type())));
    }
    CHECK((c->head->weight.scalar_type() == torch::kDouble));
    CHECK(c->head->weight.requires_grad());
  }
  SUBCASE("a graph that saved a parameter notices the load") {
    Net c;
    at::Tensor w = c->head->weight;
    const auto version = w._version();
    torch::Tensor y = (w * w).sum();  // saves w for backward
    StateDict ld;
    add_module(ld, "model", *c);
    load(ld, store, "step-2");
    CHECK(same_bits(w, a.net->head->weight));
    CHECK(w._version() > version);
    CHECK_THROWS_AS(y.backward(), c10::Error);
  }
}

TEST_CASE("the CPU RNG state round-trips through a store") {
  TempDir dir("module");
  Store store = Store::open(dir.path());
  torch::manual_seed(11);
  StateDict sd;
  add_rng_state(sd, "rng.cpu");
  CHECK(std::get<Bytes>(sd.value("rng.cpu")).data.size() > 1000);
  save(sd, store, "rng");
  at::Tensor first = torch::randn({8});
  torch::manual_seed(12);
  CHECK_FALSE(same_bits(torch::randn({8}), first));
  StateDict ld;
  add_rng_state(ld, "rng.cpu");  // a placeholder the load overwrites
  load(ld, store, "rng");
  restore_rng_state(ld, "rng.cpu");
  CHECK(same_bits(torch::randn({8}), first));
}

TEST_CASE("CUDA model and optimizer through AppState") {
  if (!torch::cuda::is_available()) {
    MESSAGE("no CUDA device here: the CUDA round trip runs on the GPU machine only");
    return;
  }
  TempDir dir("module");
  Store store = Store::open(dir.path());
  torch::manual_seed(13);
  Net a;
  a->to(torch::kCUDA);
  optim::AdamW oa(a->parameters(), optim::AdamWOptions(0.01));
  auto step = [](Net& net, optim::Optimizer& opt, int64_t i) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(100 + i);
    at::Tensor ids = at::randint(0, 16, {32}, gen, at::TensorOptions().dtype(at::kLong)).cuda();
    at::Tensor targets = at::randint(0, 16, {32}, gen, at::TensorOptions().dtype(at::kLong)).cuda();
    opt.zero_grad();
    torch::nn::functional::cross_entropy(net->forward(ids), targets).backward();
    opt.step();
  };
  step(a, oa, 0);
  step(a, oa, 1);
  AppState app_a(*a, oa);
  save(app_a, store, "cuda");
  torch::manual_seed(14);
  Net b;
  b->to(torch::kCUDA);
  optim::AdamW ob(b->parameters(), optim::AdamWOptions(0.5));
  CHECK(differing(a, b).size() == 14);
  AppState app_b(*b, ob);
  load(app_b, store, "cuda");
  CHECK(b->head->weight.is_cuda());
  CHECK(differing(a, b).empty());
  check_same_adam_state<optim::AdamWParamState>(a, oa, b, ob, false);
  CHECK(state_of<optim::AdamWParamState>(ob, b->head->weight)->exp_avg().is_cuda());
  step(a, oa, 2);
  step(b, ob, 2);
  CHECK(differing(a, b).empty());
}
