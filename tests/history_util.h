// Helpers for the history suites (rm, gc, diff, retention, crash, env):
// named float32 tensors with deterministic contents, models whose versions
// share most chunks, and set arithmetic on a store's file names (files_in is
// in test_util.h).
#pragma once

#include <algorithm>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "tessera/checkpoint.h"
#include "tessera/state_dict.h"
#include "test_util.h"

namespace tessera::test {

// Tensors as a training loop would hold them: name -> float32 values.
struct Model {
  std::map<std::string, std::vector<float>> tensors;

  // Adds (or replaces) `name` with `count` random values from `seed`.
  void set(const std::string& name, size_t count, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> n;
    auto& t = tensors[name];
    t.resize(count);
    for (auto& x : t) x = n(rng);
  }

  StateDict state() {
    StateDict sd;
    for (auto& [name, t] : tensors)
      sd.add_tensor(name, TensorView::contiguous("float32", 4, t.data(), {static_cast<int64_t>(t.size())}));
    return sd;
  }

  // Loads `checkpoint` into buffers shaped like this model's tensors and
  // returns whether every one came back bit-exact.
  bool loads_exactly(const Store& store, const std::string& checkpoint) const {
    Model out = *this;
    for (auto& [_, t] : out.tensors) std::fill(t.begin(), t.end(), -12345.0f);
    StateDict sd = out.state();
    load(sd, store, checkpoint);
    return out.tensors == tensors;
  }
};

// Raw chunks of random data, written by one thread into one pack per save
// (each writer thread fills a pack of its own): pack contents and sizes
// follow from the chunks.
inline SaveOptions raw_chunks(int64_t chunk_bytes) {
  SaveOptions o;
  o.chunk_bytes = chunk_bytes;
  o.compression = Compression::kNone;
  o.threads = 1;
  return o;
}

// The version in which chunk `j` of tensor `i` last changed, as of version
// `v`: each version changes about a quarter of the chunks, so checkpoints
// share most chunks and packs become partly dead as old ones are removed.
inline int last_change(int i, int j, int v) {
  for (int u = v; u > 0; --u)
    if ((u * 7 + i * 3 + j) % 4 == 0) return u;
  return 0;
}

// Version `v` of a model of `tensors` tensors "t0", "t1", ..., each
// `chunks_per_tensor` chunks of `chunk_floats` values; a chunk's values
// change only in the versions last_change names.
inline Model versioned_model(int v, int tensors, int chunks_per_tensor, size_t chunk_floats) {
  Model m;
  for (int i = 0; i < tensors; ++i) {
    auto& t = m.tensors["t" + std::to_string(i)];
    t.resize(chunks_per_tensor * chunk_floats);
    for (int j = 0; j < chunks_per_tensor; ++j) {
      std::mt19937 rng(static_cast<uint32_t>(i * 1000003 + j * 1009 + last_change(i, j, v)));
      for (size_t k = 0; k < chunk_floats; ++k) t[j * chunk_floats + k] = static_cast<float>(rng()) / 3.0f;
    }
  }
  return m;
}

inline std::set<std::string> minus(const std::set<std::string>& a, const std::set<std::string>& b) {
  std::set<std::string> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::inserter(out, out.end()));
  return out;
}

}  // namespace tessera::test
