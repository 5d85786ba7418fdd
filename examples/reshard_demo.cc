// The main example: a small decoder-only LM built with torch::nn saves its
// parameters, buffers and training position into a tessera store; the same
// checkpoint then loads into other layouts (column shards for tensor
// parallelism, row shards for FSDP) bit-exact; a second save after a partial
// update writes only the chunks that changed.
//
//   reshard_demo STORE_DIR
#include <torch/torch.h>

#include <cstdio>
#include <iostream>

#include "tessera/checkpoint.h"
#include "tessera/torch.h"

namespace {

struct BlockImpl : torch::nn::Module {
  BlockImpl(int64_t d, int64_t hidden)
      : norm(register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})))),
        qkv(register_module("qkv", torch::nn::Linear(d, 3 * d))),
        proj(register_module("proj", torch::nn::Linear(d, d))),
        up(register_module("up", torch::nn::Linear(d, hidden))),
        down(register_module("down", torch::nn::Linear(hidden, d))) {}
  torch::nn::LayerNorm norm;
  torch::nn::Linear qkv, proj, up, down;
};
TORCH_MODULE(Block);

struct TinyLMImpl : torch::nn::Module {
  TinyLMImpl(int64_t vocab, int64_t d, int64_t layers) {
    embed = register_module("embed", torch::nn::Embedding(vocab, d));
    layers_ = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < layers; ++i) {
      blocks.push_back(Block(d, 4 * d));
      layers_->push_back(blocks.back());
    }
    register_buffer("rope_freqs", torch::pow(10000.0, -torch::arange(0, d, 2, torch::kFloat) / d));
  }
  torch::nn::Embedding embed{nullptr};
  torch::nn::ModuleList layers_{nullptr};
  std::vector<Block> blocks;
};
TORCH_MODULE(TinyLM);

tessera::StateDict state_of(torch::nn::Module& m, int64_t step) {
  tessera::StateDict sd;
  for (const auto& p : m.named_parameters()) tessera::add_tensor(sd, "model." + p.key(), p.value());
  for (const auto& b : m.named_buffers()) tessera::add_tensor(sd, "model." + b.key(), b.value());
  sd.add_value("step", step);
  sd.add_value("data.position", int64_t{step * 32});
  return sd;
}

std::string mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: reshard_demo STORE_DIR\n";
    return 2;
  }
  const std::string path = argv[1];
  torch::manual_seed(0);
  TinyLM model(8192, 256, 4);
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.normal_(0, 0.02);

  tessera::Store store = tessera::Store::open(path);
  tessera::SaveOptions options;
  options.chunk_bytes = 1 << 20;
  auto r1 = tessera::save(state_of(*model, 100), store, "step-100", options);
  std::cout << "saved step-100: " << r1.chunks << " chunks, " << mib(r1.logical_bytes) << " logical, "
            << mib(r1.written_bytes) << " written\n";

  // Resume on a "2-way tensor-parallel" layout: each rank loads column halves
  // of every 2-D weight; 1-D tensors whole.
  for (int rank = 0; rank < 2; ++rank) {
    tessera::StateDict target;
    std::vector<std::pair<torch::Tensor, torch::Tensor>> pairs;  // loaded, expected
    for (const auto& p : model->named_parameters()) {
      const torch::Tensor& full = p.value();
      if (full.dim() == 2) {
        int64_t cols = full.size(1) / 2;
        torch::Tensor local = torch::empty({full.size(0), cols}, full.options());
        tessera::add_shard(target, "model." + p.key(), local, {full.size(0), full.size(1)}, {0, rank * cols});
        pairs.emplace_back(local, full.narrow(1, rank * cols, cols));
      } else {
        torch::Tensor local = torch::empty_like(full);
        tessera::add_tensor(target, "model." + p.key(), local);
        pairs.emplace_back(local, full);
      }
    }
    target.add_value("step", int64_t{0});
    tessera::LoadOptions lo;
    lo.strict = true;
    auto lr = tessera::load(target, tessera::Store::open_read_only(path), "step-100", lo);
    bool exact = true;
    for (auto& [got, want] : pairs) exact = exact && torch::equal(got, want);
    std::cout << "TP rank " << rank << "/2 loaded column shards: " << mib(lr.bytes_read) << " read, bit-exact: "
              << (exact ? "yes" : "NO") << ", step " << std::get<int64_t>(target.value("step")) << "\n";
    if (!exact) return 1;
  }

  // Fine-tune only the last block, then save again: unchanged chunks are shared.
  for (auto& p : model->blocks.back()->parameters()) p.add_(0.01);
  auto r2 = tessera::save(state_of(*model, 200), store, "step-200", options);
  std::cout << "saved step-200: " << r2.chunks_written << " of " << r2.chunks << " chunks written ("
            << mib(r2.written_bytes) << "), the rest shared with step-100\n";
  std::cout << "store: " << path << "\n";
  return 0;
}
