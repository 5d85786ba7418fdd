// Async saves: the call returns once the state is staged, the tensors may be
// changed at once, the staging pool is reused and bounded, errors reach the
// handle. Runs on CPU tensors here, and on CUDA tensors where a GPU is present.
#include <ATen/ATen.h>

#include <thread>

#include "tessera/async.h"
#include "tessera/checkpoint.h"
#include "tessera/error.h"
#include "tessera/torch.h"
#include "test_util.h"

#include <doctest/doctest.h>  // after the torch headers (see toolchain.md)

using namespace tessera;
using tessera::test::TempDir;

namespace {

at::Device device() { return at::hasCUDA() ? at::Device(at::kCUDA) : at::Device(at::kCPU); }

struct Model {
  std::map<std::string, at::Tensor> tensors;
  StateDict state(int64_t step) const {
    StateDict sd;
    for (const auto& [name, t] : tensors) add_tensor(sd, name, t);
    sd.add_value("step", step);
    return sd;
  }
};

Model make_model(uint64_t seed) {
  at::manual_seed(seed);
  auto on = at::TensorOptions().device(device());
  Model m;
  m.tensors["embed"] = at::randn({1000, 96}, on.dtype(at::kBFloat16));
  m.tensors["w1"] = at::randn({300, 200}, on.dtype(at::kFloat));
  m.tensors["w1_t"] = at::randn({200, 300}, on.dtype(at::kFloat)).t();  // non-contiguous
  m.tensors["bias"] = at::randn({77}, on.dtype(at::kHalf));
  m.tensors["count"] = at::arange(10, at::TensorOptions().dtype(at::kLong));  // CPU beside device tensors
  m.tensors["empty"] = at::empty({0, 4}, on.dtype(at::kFloat));
  return m;
}

std::map<std::string, at::Tensor> snapshot(const Model& m) {
  std::map<std::string, at::Tensor> s;
  for (const auto& [name, t] : m.tensors) s[name] = t.to(at::kCPU).clone();
  return s;
}

void scribble(Model& m) {
  for (auto& [name, t] : m.tensors)
    if (t.numel() > 0) t.fill_(7);
}

void expect_checkpoint_equals(const std::string& store_path, const std::string& ckpt,
                              const std::map<std::string, at::Tensor>& expected, int64_t step) {
  Store store = Store::open_read_only(store_path);
  StateDict sd;
  std::map<std::string, at::Tensor> got;
  for (const auto& [name, t] : expected) {
    got[name] = at::zeros_like(t);
    add_tensor(sd, name, got[name]);
  }
  sd.add_value("step", int64_t{0});
  load(sd, store, ckpt);
  for (const auto& [name, t] : expected) CHECK_MESSAGE(at::equal(got[name], t), name);
  CHECK(std::get<int64_t>(sd.value("step")) == step);
}

uint64_t state_bytes(const Model& m) {
  uint64_t n = 0;
  for (const auto& [_, t] : m.tensors) n += t.numel() * t.element_size();
  return n;
}

}  // namespace

TEST_CASE("tensors may change as soon as save returns; the checkpoint holds the values at the call") {
  TempDir dir("async");
  Store store = Store::open(dir.path());
  Model m = make_model(1);
  auto before = snapshot(m);
  AsyncSaver saver;
  SaveHandle h = saver.save(m.state(5), store, "step5");
  scribble(m);  // training goes on at once
  SaveResult r = h.wait();
  CHECK(h.done());
  CHECK(r.logical_bytes == state_bytes(m));
  CHECK(h.blocked_seconds() >= 0);
  expect_checkpoint_equals(dir.path(), "step5", before, 5);
}

TEST_CASE("the staging pool is reused across saves and stays within one state by default") {
  TempDir dir("async");
  Store store = Store::open(dir.path());
  Model m = make_model(2);
  AsyncSaver saver;
  std::vector<SaveHandle> handles;
  std::vector<std::map<std::string, at::Tensor>> expected;
  for (int step = 0; step < 4; ++step) {
    expected.push_back(snapshot(m));
    handles.push_back(saver.save(m.state(step), store, "s" + std::to_string(step)));
    for (auto& [_, t] : m.tensors)
      if (t.is_floating_point() && t.numel() > 0) t.add_(1);  // the next step
  }
  const uint64_t held = saver.staging_bytes();
  for (auto& h : handles) h.wait();
  CHECK(saver.staging_bytes() == held);  // no growth: one state's worth, reused
  CHECK(held >= state_bytes(m));
  CHECK(held <= 2 * state_bytes(m) + (256ull << 20));  // one lease (blocks round up)
  for (int step = 0; step < 4; ++step) expect_checkpoint_equals(dir.path(), "s" + std::to_string(step), expected[step], step);
}

TEST_CASE("reserve fills the pool ahead of the first save, which then allocates nothing") {
  TempDir dir("async");
  Store store = Store::open(dir.path());
  Model m = make_model(7);
  AsyncSaver saver;
  CHECK(saver.staging_bytes() == 0);
  saver.reserve(m.state(0));
  const uint64_t held = saver.staging_bytes();
  CHECK(held >= state_bytes(m));
  auto before = snapshot(m);
  saver.save(m.state(1), store, "r").wait();
  CHECK(saver.staging_bytes() == held);
  expect_checkpoint_equals(dir.path(), "r", before, 1);
  AsyncSaver bounded(AsyncSaverOptions{.max_staging_bytes = 4096});
  CHECK_THROWS_AS(bounded.reserve(m.state(0)), InvalidArgument);
}

TEST_CASE("a bound large enough for two states lets saves overlap; a bound too small is refused") {
  TempDir dir("async");
  Store store = Store::open(dir.path());
  Model m = make_model(3);
  {
    AsyncSaver saver(AsyncSaverOptions{.max_staging_bytes = 4 * (256ull << 20)});
    SaveHandle a = saver.save(m.state(1), store, "a");
    SaveHandle b = saver.save(m.state(2), store, "b");  // both blocks fit: no wait for a
    b.wait();
    CHECK(a.done());  // saves run in call order
    CHECK(saver.staging_bytes() <= 4 * (256ull << 20));
  }
  AsyncSaver tiny(AsyncSaverOptions{.max_staging_bytes = 4096});
  auto err = tessera::test::error_of([&] { tiny.save(m.state(3), store, "c"); });
  CHECK(tessera::test::has(err, "max_staging_bytes"));
  CHECK(tessera::test::has(err, "4096"));
  CHECK(Store::open_read_only(dir.path()).checkpoints().size() == 2);
}

TEST_CASE("a failing save reports through its handle and the saver goes on") {
  TempDir dir("async");
  Store store = Store::open(dir.path());
  Model m = make_model(4);
  AsyncSaver saver;
  saver.save(m.state(1), store, "x").wait();
  SaveHandle dup = saver.save(m.state(2), store, "x");
  CHECK_THROWS_AS(dup.wait(), AlreadyExistsError);
  CHECK_THROWS_AS(dup.wait(), AlreadyExistsError);  // every wait sees the error
  auto after = snapshot(m);
  saver.save(m.state(3), store, "y").wait();
  expect_checkpoint_equals(dir.path(), "y", after, 3);
  CHECK_THROWS_AS(SaveHandle().wait(), Error);
}

TEST_CASE("destroying the saver finishes the saves in flight") {
  TempDir dir("async");
  Store store = Store::open(dir.path());
  Model m = make_model(5);
  auto before = snapshot(m);
  {
    AsyncSaver saver;
    saver.save(m.state(9), store, "last");
  }
  expect_checkpoint_equals(dir.path(), "last", before, 9);
}

TEST_CASE("distributed async save: ranks stage their shards and commit one checkpoint") {
  TempDir dir("async");
  const int64_t world = 3;
  at::manual_seed(6);
  at::Tensor full = at::randn({96, 40}, at::TensorOptions().dtype(at::kFloat).device(device()));
  auto planes = in_process_control_planes(world);
  std::vector<std::thread> ranks;
  std::vector<std::string> errors(world);
  for (int64_t r = 0; r < world; ++r)
    ranks.emplace_back([&, r] {
      try {
        AsyncSaver saver;
        at::Tensor local = full.narrow(0, r * 32, 32).clone();
        StateDict sd;
        add_shard(sd, "w", local, {96, 40}, {r * 32, 0});
        Store store = Store::open(dir.path());  // every rank opens the store itself
        SaveOptions o;
        o.plane = planes[r].get();
        SaveHandle h = saver.save(sd, store, "dist", o);
        local.zero_();
        h.wait();
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : ranks) t.join();
  for (int64_t r = 0; r < world; ++r) CHECK_MESSAGE(errors[r].empty(), errors[r]);
  Store reader = Store::open_read_only(dir.path());
  at::Tensor back = at::zeros({96, 40}, at::TensorOptions().dtype(at::kFloat));
  StateDict sd;
  add_tensor(sd, "w", back);
  load(sd, reader, "dist");
  CHECK(at::equal(back, full.to(at::kCPU)));
}

TEST_CASE("the save keeps its own handle to the store; a read-only store fails through the handle") {
  TempDir dir("async");
  Model m = make_model(8);
  auto before = snapshot(m);
  AsyncSaver saver;
  SaveHandle h;
  {
    Store store = Store::open(dir.path());
    h = saver.save(m.state(2), store, "kept");
  }  // the caller's handle is gone before the background save runs
  h.wait();
  expect_checkpoint_equals(dir.path(), "kept", before, 2);
  Store read_only = Store::open_read_only(dir.path());
  SaveHandle refused = saver.save(m.state(3), read_only, "ro");
  CHECK_THROWS_AS(refused.wait(), StoreError);
  CHECK(read_only.checkpoints().size() == 1);
}
