// Helpers for the history suites (rm, gc, diff, retention): named float32
// tensors with deterministic contents, and set arithmetic on a store's file
// names (files_in is in test_util.h).
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

inline std::set<std::string> minus(const std::set<std::string>& a, const std::set<std::string>& b) {
  std::set<std::string> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::inserter(out, out.end()));
  return out;
}

}  // namespace tessera::test
