// The synthetic LLM-shaped state that store_bench and dist_bench save and
// load: the tensors' plan, their generation, destination buffers and the
// byte-for-byte check. Header-only; no LibTorch.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"

namespace tessera::bench {

// One matrix of the synthetic model, with its bytes.
struct Tensor {
  std::string name;
  std::string dtype;
  size_t elem = 0;
  int64_t rows = 0, cols = 0;
  std::unique_ptr<std::byte[]> data;
  size_t bytes() const { return static_cast<size_t>(rows * cols) * elem; }
};

// Llama-like layer at hidden 2048, MLP 8192: bf16 weights (128 MiB a layer)
// and the fp32 master copies a mixed-precision trainer keeps of some of them
// (80 MiB), repeated until `target` bytes. Three shapes cover what matters
// to the chunk grid: square, tall (row slabs) and wide (column blocks).
inline std::vector<Tensor> plan_model(double target) {
  struct Proto { const char* name; bool fp32; int64_t rows, cols; };
  const Proto layer[] = {
      {"attn.q_proj", false, 2048, 2048},   {"attn.k_proj", false, 2048, 2048},
      {"attn.v_proj", false, 2048, 2048},   {"attn.o_proj", false, 2048, 2048},
      {"mlp.gate_proj", false, 8192, 2048}, {"mlp.up_proj", false, 8192, 2048},
      {"mlp.down_proj", false, 2048, 8192}, {"master.attn.o_proj", true, 2048, 2048},
      {"master.mlp.down_proj", true, 2048, 8192},
  };
  std::vector<Tensor> out;
  double total = 0;
  for (int l = 0; total < target; ++l)
    for (const Proto& p : layer) {
      if (total >= target) break;
      Tensor t;
      t.name = "layers." + std::to_string(l) + "." + p.name + ".weight";
      t.dtype = p.fp32 ? "float32" : "bfloat16";
      t.elem = p.fp32 ? 4 : 2;
      t.rows = p.rows;
      t.cols = p.cols;
      total += static_cast<double>(t.bytes());
      out.push_back(std::move(t));
    }
  return out;
}

inline uint64_t logical_bytes(const std::vector<Tensor>& model) {
  uint64_t total = 0;
  for (const auto& t : model) total += t.bytes();
  return total;
}

// Runs fn(i) for i in [0, n) on `threads` threads (0 = one per core).
template <class Fn>
void parallel_for(size_t n, size_t threads, Fn fn) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (size_t t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (size_t i; (i = next++) < n;) fn(i);
    });
  for (auto& th : pool) th.join();
}

// Fills every tensor with ~N(0, 0.02²) values (tensor i seeded with i + 1).
inline void generate(std::vector<Tensor>& model, size_t threads) {
  parallel_for(model.size(), threads, [&](size_t i) {
    Tensor& t = model[i];
    const size_t n = static_cast<size_t>(t.rows * t.cols);
    t.data.reset(new std::byte[t.bytes()]);
    if (t.elem == 4) fill_normal_f32(reinterpret_cast<float*>(t.data.get()), n, 0.02f, i + 1);
    else fill_normal_bf16(reinterpret_cast<uint16_t*>(t.data.get()), n, 0.02f, i + 1);
  });
}

inline void clear_targets(const std::vector<Tensor>& model, std::vector<std::unique_ptr<std::byte[]>>& bufs,
                          size_t threads) {
  parallel_for(model.size(), threads, [&](size_t i) { std::memset(bufs[i].get(), 0, model[i].bytes()); });
}

// Destination buffers, touched once so page faults are not timed: a restart
// loads into parameters the model has already allocated and initialized.
inline std::vector<std::unique_ptr<std::byte[]>> allocate_targets(const std::vector<Tensor>& model,
                                                                  size_t threads) {
  std::vector<std::unique_ptr<std::byte[]>> out(model.size());
  for (size_t i = 0; i < model.size(); ++i) out[i].reset(new std::byte[model[i].bytes()]);
  clear_targets(model, out, threads);
  return out;
}

// memcmp of every tensor against its destination buffer; names the first
// tensor that differs on stderr.
inline bool all_equal(const std::vector<Tensor>& model, const std::vector<std::unique_ptr<std::byte[]>>& bufs) {
  for (size_t i = 0; i < model.size(); ++i)
    if (std::memcmp(model[i].data.get(), bufs[i].get(), model[i].bytes()) != 0) {
      std::fprintf(stderr, "MISMATCH in %s\n", model[i].name.c_str());
      return false;
    }
  return true;
}

}  // namespace tessera::bench
