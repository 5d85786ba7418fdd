// A small decoder-only transformer LM trained on CPU across ranks with its
// parameters sharded, checkpointed with tessera, and resumed on another world
// size and layout. Launch with torchrun or scripts/launch.sh:
//
//   torchrun --nproc_per_node=4 --no-python train_lm STORE --layout rows --steps 6 --save-every 3 --async 1
//   scripts/launch.sh 2 train_lm STORE --layout cols --resume fsdp4-step-3 --steps 6
//
// Layouts: `rows` shards every parameter (and its AdamW state) along dim 0,
// FSDP-style; `cols` along the last dim, like tensor parallelism's column
// split. Each step all-gathers the full parameters over Gloo, computes the
// gradient of each sequence of the global batch on the rank that owns it,
// all-gathers those per-sequence gradients and sums them in global sequence
// order, so every rank sees the same full gradient bit for bit whatever the
// world size; each rank then runs AdamW on its own shard. That makes a
// resumed run's losses bit-identical to an uninterrupted run's, on any layout
// (shapes are chosen so every shard is a multiple of 32 elements: LibTorch's
// vectorized element-wise kernels then never take their scalar tail path,
// whose rounding can differ from the vector lanes').
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/torch.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>

#include "tessera/async.h"
#include "tessera/c10d.h"
#include "tessera/module.h"

namespace {

constexpr int64_t kVocab = 256, kDim = 128, kLayers = 2, kHeads = 4, kSeq = 32, kBatch = 8;

struct Args {
  std::string store, layout = "rows", resume, losses;
  int64_t steps = 6, save_every = 3;
  bool async = false;  // save with tessera::AsyncSaver: training goes on while the checkpoint is written
};

Args parse(int argc, char** argv) {
  Args a;
  if (argc < 2) throw std::invalid_argument("usage: train_lm STORE [--layout rows|cols] [--steps N] "
                                            "[--save-every K] [--resume CHECKPOINT] [--losses FILE] [--async 0|1]");
  a.store = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--layout") a.layout = v;
    else if (k == "--steps") a.steps = std::stoll(v);
    else if (k == "--save-every") a.save_every = std::stoll(v);
    else if (k == "--resume") a.resume = v;
    else if (k == "--losses") a.losses = v;
    else if (k == "--async") a.async = v == "1";
    else throw std::invalid_argument("unknown option " + k);
  }
  if (a.layout != "rows" && a.layout != "cols") throw std::invalid_argument("--layout must be rows or cols");
  return a;
}

// Every parameter of the model, in a fixed order, with its global shape.
std::vector<std::pair<std::string, std::vector<int64_t>>> parameter_shapes() {
  std::vector<std::pair<std::string, std::vector<int64_t>>> p = {{"embed.weight", {kVocab, kDim}}};
  for (int64_t l = 0; l < kLayers; ++l) {
    std::string b = "layers." + std::to_string(l) + ".";
    p.push_back({b + "norm1.weight", {kDim}});
    p.push_back({b + "norm1.bias", {kDim}});
    p.push_back({b + "qkv.weight", {3 * kDim, kDim}});
    p.push_back({b + "proj.weight", {kDim, kDim}});
    p.push_back({b + "norm2.weight", {kDim}});
    p.push_back({b + "norm2.bias", {kDim}});
    p.push_back({b + "up.weight", {4 * kDim, kDim}});
    p.push_back({b + "down.weight", {kDim, 4 * kDim}});
  }
  p.push_back({"norm.weight", {kDim}});
  p.push_back({"norm.bias", {kDim}});
  return p;
}

// A module tree whose parameters are this rank's shards, under the same
// qualified names as the full model ("layers.0.qkv.weight").
class ShardedModel {
 public:
  ShardedModel(int64_t rank, int64_t world, const std::string& layout) : rank_(rank), world_(world), layout_(layout) {
    torch::manual_seed(1234);  // the same full initial weights on every layout
    for (auto& [name, shape] : parameter_shapes()) {
      torch::Tensor full = name.find("norm") != std::string::npos
                               ? (name.ends_with("weight") ? torch::ones(shape) : torch::zeros(shape))
                               : torch::randn(shape) * 0.02;
      int64_t d = split_dim(shape);
      torch::Tensor local = full.chunk(world_, d)[rank_].clone();
      module_for(name)->register_parameter(leaf(name), local);
      names_.push_back(name);
      shapes_[name] = shape;
    }
  }

  torch::nn::Module& root() { return *root_; }
  const std::vector<std::string>& names() const { return names_; }
  int64_t split_dim(const std::vector<int64_t>& shape) const { return layout_ == "rows" ? 0 : shape.size() - 1; }
  torch::Tensor& local(const std::string& name) { return *module_for(name)->named_parameters(false).find(leaf(name)); }

  tessera::PlacementFn placement() {
    return [this](const std::string& name) -> std::optional<tessera::Placement> {
      const auto& shape = shapes_.at(name);
      std::vector<int64_t> offsets(shape.size(), 0);
      int64_t d = split_dim(shape);
      offsets[d] = rank_ * (shape[d] / world_);
      return tessera::Placement{shape, offsets};
    };
  }

 private:
  static std::string leaf(const std::string& name) { return name.substr(name.rfind('.') + 1); }
  std::shared_ptr<torch::nn::Module> module_for(const std::string& name) {
    std::shared_ptr<torch::nn::Module> m = root_;
    size_t start = 0, dot;
    while ((dot = name.find('.', start)) != std::string::npos) {
      std::string part = name.substr(start, dot - start);
      auto children = m->named_children();
      auto* child = children.find(part);
      m = child ? *child : m->register_module(part, std::make_shared<torch::nn::Module>());
      start = dot + 1;
    }
    return m;
  }
  int64_t rank_, world_;
  std::string layout_;
  std::shared_ptr<torch::nn::Module> root_ = std::make_shared<torch::nn::Module>();
  std::vector<std::string> names_;
  std::map<std::string, std::vector<int64_t>> shapes_;
};

// Sequence `s` of step `step`: an arithmetic progression mod 256 (learnable).
torch::Tensor tokens_for(int64_t step, int64_t s) {
  int64_t start = (step * 7919 + s * 104729) % kVocab, stride = 1 + (step * 31 + s * 17) % 13;
  return (torch::arange(kSeq, torch::kLong) * stride + start).remainder(kVocab);
}

torch::Tensor forward_loss(const std::map<std::string, torch::Tensor>& p, const torch::Tensor& tokens) {
  namespace F = torch::nn::functional;
  auto ln = [&](const torch::Tensor& x, const std::string& n) {
    return torch::layer_norm(x, {kDim}, p.at(n + ".weight"), p.at(n + ".bias"));
  };
  torch::Tensor x = p.at("embed.weight").index_select(0, tokens);  // [T, D]
  torch::Tensor mask = torch::ones({kSeq, kSeq}).triu(1).to(torch::kBool);
  const int64_t hd = kDim / kHeads;
  for (int64_t l = 0; l < kLayers; ++l) {
    std::string b = "layers." + std::to_string(l) + ".";
    auto qkv = ln(x, b + "norm1").matmul(p.at(b + "qkv.weight").t()).split(kDim, 1);
    auto heads = [&](const torch::Tensor& t) { return t.reshape({kSeq, kHeads, hd}).transpose(0, 1); };
    auto att = heads(qkv[0]).matmul(heads(qkv[1]).transpose(1, 2)) / std::sqrt(static_cast<double>(hd));
    att = att.masked_fill(mask, -1e9).softmax(-1);
    auto out = att.matmul(heads(qkv[2])).transpose(0, 1).reshape({kSeq, kDim});
    x = x + out.matmul(p.at(b + "proj.weight").t());
    auto h = torch::gelu(ln(x, b + "norm2").matmul(p.at(b + "up.weight").t()));
    x = x + h.matmul(p.at(b + "down.weight").t());
  }
  auto logits = ln(x, "norm").matmul(p.at("embed.weight").t());  // tied head
  return F::cross_entropy(logits.slice(0, 0, kSeq - 1), tokens.slice(0, 1, kSeq));
}

std::vector<torch::Tensor> allgather(c10d::Backend& pg, const torch::Tensor& t, int64_t world) {
  std::vector<std::vector<torch::Tensor>> out(1);
  for (int64_t r = 0; r < world; ++r) out[0].push_back(torch::empty_like(t));
  std::vector<torch::Tensor> in{t.contiguous()};
  pg.allgather(out, in)->wait();
  return out[0];
}

std::string hex_float(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", x);
  return buf;
}

}  // namespace

int main(int argc, char** argv) try {
  Args args = parse(argc, argv);
  at::set_num_threads(1);  // deterministic GEMMs: the same math on every layout
  auto env = tessera::JobEnvironment::from_env();
  const int64_t rank = env.rank, world = env.world_size;
  if (kBatch % world != 0) throw std::invalid_argument("world size must divide the batch of 8");
  auto store = tessera::connect_store(env);
  auto plane = tessera::control_plane(store, rank, world);
  // Every rank opens the checkpoint store itself (the first creates it); a
  // save with options.plane set is collective over the ranks.
  tessera::Store checkpoints = tessera::Store::open(args.store);
  tessera::SaveOptions save_options;
  save_options.plane = plane.get();
  std::optional<tessera::AsyncSaver> saver;
  if (args.async) saver.emplace();
  std::vector<std::pair<std::string, tessera::SaveHandle>> pending;
  auto gloo_options = c10d::ProcessGroupGloo::Options::create();
  gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("gloo", store), rank,
                                                        world, gloo_options);

  ShardedModel model(rank, world, args.layout);
  std::vector<torch::Tensor> params;
  for (const auto& n : model.names()) params.push_back(model.local(n));
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(3e-3).weight_decay(0.01));
  const std::string tag = (args.layout == "rows" ? "fsdp" : "tp") + std::to_string(world);

  int64_t step = 0;
  if (!args.resume.empty()) {
    tessera::StateDict sd;
    tessera::add_module(sd, "model", model.root(), model.placement());
    tessera::add_optimizer(sd, "optim", opt, model.root(), model.placement());
    sd.add_value("step", int64_t{0});
    tessera::load(sd, checkpoints, args.resume);
    tessera::apply_optimizer_values(sd, "optim", opt, model.root());
    step = std::get<int64_t>(sd.value("step"));
    if (rank == 0) std::cout << "resumed '" << args.resume << "' at step " << step << " on " << world << " ranks, "
                             << args.layout << " layout\n";
  }

  std::ofstream loss_log;
  if (rank == 0 && !args.losses.empty()) loss_log.open(args.losses, std::ios::app);
  const int64_t per_rank = kBatch / world;
  while (step < args.steps) {
    // Full parameters from the shards.
    std::map<std::string, torch::Tensor> full;
    for (const auto& n : model.names()) {
      torch::Tensor& local = model.local(n);
      full[n] = torch::cat(allgather(*pg, local.detach(), world), model.split_dim(local.sizes().vec()))
                    .set_requires_grad(true);
    }
    // This rank's sequences: one gradient each, flattened in parameter order.
    std::vector<torch::Tensor> grads, losses;
    for (int64_t i = 0; i < per_rank; ++i) {
      for (auto& [n, t] : full) t.mutable_grad() = torch::Tensor();
      torch::Tensor loss = forward_loss(full, tokens_for(step, rank * per_rank + i));
      loss.backward();
      std::vector<torch::Tensor> flat;
      for (const auto& n : model.names()) flat.push_back(full[n].grad().reshape({-1}));
      grads.push_back(torch::cat(flat));
      losses.push_back(loss.detach().reshape({1}));
    }
    auto all_grads = allgather(*pg, torch::stack(grads), world);  // [world][per_rank, P], global order
    auto all_losses = allgather(*pg, torch::cat(losses), world);
    torch::Tensor g = torch::cat(all_grads);   // [B, P]
    torch::Tensor sum = g[0].clone(), loss_sum = torch::cat(all_losses);
    for (int64_t s = 1; s < kBatch; ++s) sum += g[s];  // fixed order: independent of the world size
    sum /= kBatch;
    double mean_loss = loss_sum.sum().item<double>() / kBatch;
    // Each rank updates its shard with its share of the gradient.
    int64_t offset = 0;
    for (const auto& n : model.names()) {
      torch::Tensor& local = model.local(n);
      const auto& shape = full[n].sizes();
      torch::Tensor gfull = sum.slice(0, offset, offset + full[n].numel()).reshape(shape);
      offset += full[n].numel();
      int64_t d = model.split_dim(shape.vec());
      local.mutable_grad() = gfull.chunk(world, d)[rank].contiguous();
    }
    opt.step();
    ++step;
    if (rank == 0) {
      std::cout << "step " << step << " loss " << mean_loss << "\n";
      if (loss_log) loss_log << "step " << step << " loss " << hex_float(mean_loss) << "\n";
    }
    if (step % args.save_every == 0 || step == args.steps) {
      tessera::StateDict sd;
      tessera::add_module(sd, "model", model.root(), model.placement());
      tessera::add_optimizer(sd, "optim", opt, model.root(), model.placement());
      sd.add_value("step", step);
      const std::string name = tag + "-step-" + std::to_string(step);
      if (saver) {
        // Returns once this rank's shards are copied; the next steps modify
        // them while the background thread writes and commits.
        pending.emplace_back(name, saver->save(sd, checkpoints, name, save_options));
        if (rank == 0) std::cout << "saving " << name << " in the background\n";
      } else {
        auto r = tessera::save(sd, checkpoints, name, save_options);
        if (rank == 0) std::cout << "saved " << name << " (rank 0 wrote " << r.written_bytes << " bytes)\n";
      }
    }
  }
  for (auto& [name, handle] : pending) {
    auto r = handle.wait();
    if (rank == 0) std::cout << "saved " << name << " (rank 0 wrote " << r.written_bytes << " bytes)\n";
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "train_lm: " << (std::getenv("RANK") ? std::string("rank ") + std::getenv("RANK") + ": " : "")
            << e.what() << "\n";
  return 1;
}
