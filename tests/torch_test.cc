// The LibTorch layer: at::Tensor of every dtype and layout through save and
// load, shards, casts, and CUDA tensors where a GPU is present.
#include <ATen/ATen.h>

#include "tessera/checkpoint.h"
#include "tessera/error.h"
#include "tessera/torch.h"
#include "test_util.h"
#include "torch_util.h"

#include <doctest/doctest.h>  // after the torch headers (see toolchain.md)

using namespace tessera;
using tessera::test::same_bits;
using tessera::test::TempDir;

namespace {

// Random bits of `dtype` (every bit pattern, NaNs included, for bit-exact checks).
at::Tensor random_tensor(c10::ScalarType dtype, c10::IntArrayRef sizes, uint64_t seed) {
  at::Tensor t = at::empty(sizes, at::TensorOptions().dtype(dtype));
  if (t.numel() == 0) return t;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor bytes = at::randint(0, 256, {t.numel() * static_cast<int64_t>(t.element_size())}, gen,
                                 at::TensorOptions().dtype(at::kByte));
  if (dtype == at::kBool) bytes = bytes.remainder(2);  // only 0 and 1 are valid bools
  std::memcpy(t.data_ptr(), bytes.data_ptr(), bytes.numel());
  return t;
}

}  // namespace

TEST_CASE("every dense dtype round-trips bit-exact, 0-D to 4-D") {
  TempDir dir("torch");
  Store store = Store::open(dir.path());
  StateDict sd;
  std::map<std::string, at::Tensor> saved;
  int n = 0;
  for (int i = 0; i < static_cast<int>(c10::ScalarType::NumOptions); ++i) {
    auto st = static_cast<c10::ScalarType>(i);
    if (c10::isQIntType(st)) continue;
    for (auto sizes : {std::vector<int64_t>{}, std::vector<int64_t>{7}, std::vector<int64_t>{3, 5},
                       std::vector<int64_t>{2, 3, 4, 5}}) {
      at::Tensor t;
      try {
        t = random_tensor(st, sizes, static_cast<uint64_t>(i * 10 + sizes.size()));
      } catch (const c10::Error&) {
        break;  // LibTorch cannot allocate this dtype (sub-byte placeholders)
      }
      std::string name = dtype_name(st) + "." + std::to_string(sizes.size());
      add_tensor(sd, name, t);
      saved[name] = t;
      ++n;
    }
  }
  MESSAGE(n << " tensors over " << saved.size() / 4 << " dtypes");
  CHECK(saved.count("bfloat16.2"));
  CHECK(saved.count("float8_e4m3fn.1"));
  CHECK(saved.count("complex128.4"));
  save(sd, store, "all");
  StateDict ld;
  std::map<std::string, at::Tensor> loaded;
  for (auto& [name, t] : saved) {
    loaded[name] = at::empty_like(t);
    add_tensor(ld, name, loaded[name]);
  }
  load(ld, store, "all");
  for (auto& [name, t] : saved) {
    CAPTURE(name);
    CHECK(same_bits(loaded[name], t));
  }
}

TEST_CASE("non-contiguous tensors: transposed, sliced, expanded; loads into strided targets") {
  TempDir dir("torch");
  Store store = Store::open(dir.path());
  at::Tensor base = random_tensor(at::kFloat, {64, 48}, 1);
  at::Tensor transposed = base.t();
  at::Tensor sliced = base.slice(1, 5, 40, 3);
  at::Tensor expanded = random_tensor(at::kDouble, {1, 16}, 2).expand({8, 16});
  StateDict sd;
  add_tensor(sd, "transposed", transposed);
  add_tensor(sd, "sliced", sliced);
  add_tensor(sd, "expanded", expanded);
  save(sd, store, "c");
  at::Tensor t2 = at::zeros({48, 64}, at::kFloat).t().t();  // contiguous [48, 64]
  at::Tensor s2_base = at::zeros({24, 100}, at::kFloat);
  at::Tensor s2 = s2_base.t().slice(0, 0, 64);  // [64, 24], strided target
  at::Tensor s2_in = s2.slice(1, 0, 12);          // [64, 12] matches sliced's shape
  at::Tensor e2 = at::zeros({8, 16}, at::kDouble);
  StateDict ld;
  add_tensor(ld, "transposed", t2);
  add_tensor(ld, "sliced", s2_in);
  add_tensor(ld, "expanded", e2);
  load(ld, store, "c");
  CHECK(same_bits(t2, transposed));  // random bits include NaNs: compare bits
  CHECK(same_bits(s2_in, sliced));
  CHECK(same_bits(e2, expanded));
  CHECK(at::equal(s2_base.slice(0, 12, 24), at::zeros({12, 100})));  // nothing outside the target was written
}

TEST_CASE("shards: save row shards, load column shards and the whole tensor") {
  TempDir dir("torch");
  Store store = Store::open(dir.path());
  at::Tensor full = random_tensor(at::kBFloat16, {96, 80}, 3);
  auto rows = full.chunk(3, 0);
  SaveOptions o;
  o.chunk_bytes = 1024;
  // Three "ranks" in one state dict are not possible (one entry per name), so
  // save each row shard under the same name through separate ranks' manifests
  // is covered by the engine tests; here: whole save, sharded loads.
  StateDict sd;
  add_tensor(sd, "w", full);
  save(sd, store, "c", o);
  auto cols = at::empty({96, 80}, at::kBFloat16).chunk(4, 1);
  for (int i = 0; i < 4; ++i) {
    StateDict ld;
    at::Tensor target = at::empty({96, 20}, at::kBFloat16);
    add_shard(ld, "w", target, {96, 80}, {0, 20 * i});
    load(ld, store, "c");
    CHECK(same_bits(target, full.slice(1, 20 * i, 20 * (i + 1))));
  }
  (void)rows;
  (void)cols;
}

TEST_CASE("dtype changes: an error naming both dtypes, or a LibTorch conversion when allowed") {
  TempDir dir("torch");
  Store store = Store::open(dir.path());
  at::Tensor w = at::randn({16, 8}, at::kFloat);
  StateDict sd;
  add_tensor(sd, "w", w);
  save(sd, store, "c");
  at::Tensor half = at::zeros({16, 8}, at::kBFloat16);
  StateDict ld;
  add_tensor(ld, "w", half);
  std::string m;
  try {
    load(ld, store, "c");
  } catch (const InvalidArgument& e) {
    m = e.what();
  }
  CHECK(m.find("tensor 'w': saved dtype float32, target bfloat16") != std::string::npos);
  LoadOptions cast;
  cast.allow_cast = true;
  load(ld, store, "c", cast);
  CHECK(at::equal(half, w.to(at::kBFloat16)));
  // The same entry loads without a cast afterwards from a bfloat16 checkpoint.
  StateDict sd2;
  at::Tensor h2 = at::randn({16, 8}).to(at::kBFloat16);
  add_tensor(sd2, "w", h2);
  save(sd2, store, "c2");
  load(ld, store, "c2");
  CHECK(at::equal(half, h2));
}

TEST_CASE("unsupported tensors are refused naming the entry") {
  StateDict sd;
  std::string m;
  try {
    add_tensor(sd, "q", at::quantize_per_tensor(at::randn({4}), 0.1, 0, at::kQInt8));
  } catch (const InvalidArgument& e) {
    m = e.what();
  }
  CHECK(m.find("tensor 'q'") != std::string::npos);
  CHECK_THROWS_AS(add_tensor(sd, "u", at::Tensor()), InvalidArgument);
}

TEST_CASE("CUDA tensors save and load through pinned host memory") {
  if (!at::hasCUDA()) {
    MESSAGE("no CUDA device here: the CUDA round trip runs on the GPU machine only");
    return;
  }
  TempDir dir("torch");
  Store store = Store::open(dir.path());
  at::Tensor g = at::randn({1024, 257}, at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16));
  StateDict sd;
  add_tensor(sd, "g", g);
  save(sd, store, "c");
  at::Tensor back = at::zeros_like(g);
  StateDict ld;
  add_tensor(ld, "g", back);
  load(ld, store, "c");
  CHECK(back.is_cuda());
  CHECK(at::equal(back, g));
  // A resharding load of a CUDA shard with a cast.
  at::Tensor part = at::zeros({512, 257}, at::TensorOptions().device(at::kCUDA).dtype(at::kFloat));
  StateDict ld2;
  add_shard(ld2, "g", part, {1024, 257}, {512, 0});
  LoadOptions cast;
  cast.allow_cast = true;
  load(ld2, store, "c", cast);
  CHECK(at::equal(part, g.slice(0, 512, 1024).to(at::kFloat)));
}
