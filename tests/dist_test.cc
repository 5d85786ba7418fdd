// Distributed save with ranks as threads of one process (in-process control
// plane): resharding between world sizes and layouts, replicated boxes
// written once, and every way a rank can fail. The multi-process version over
// c10d's TCPStore is in c10d_test.cc.
#include <doctest/doctest.h>

#include <filesystem>
#include <functional>
#include <random>
#include <thread>

#include "tessera/checkpoint.h"
#include "tessera/distributed.h"
#include "tessera/error.h"
#include "tessera/inspect.h"
#include "test_util.h"

using namespace tessera;
using tessera::test::TempDir;
using tessera::test::error_of;
using tessera::test::has;
namespace fs = std::filesystem;

namespace {


// Runs fn(rank, plane) on `world` threads; returns each rank's error ("" if none).
std::vector<std::string> run_ranks(int64_t world, const std::function<void(int64_t, ControlPlane&)>& fn) {
  auto planes = in_process_control_planes(world);
  std::vector<std::string> errors(world);
  std::vector<std::thread> threads;
  for (int64_t r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        fn(r, *planes[r]);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

// A global float32 matrix of deterministic random values.
struct Matrix {
  int64_t rows, cols;
  std::vector<float> data;
  Matrix(int64_t r, int64_t c, uint32_t seed) : rows(r), cols(c), data(static_cast<size_t>(r * c)) {
    std::mt19937 rng(seed);
    for (auto& x : data) x = static_cast<float>(rng()) / 7.0f;
  }
  // Rows [r0, r0+nr) x cols [c0, c0+nc), dense.
  std::vector<float> block(int64_t r0, int64_t nr, int64_t c0, int64_t nc) const {
    std::vector<float> out;
    for (int64_t r = r0; r < r0 + nr; ++r)
      for (int64_t c = c0; c < c0 + nc; ++c) out.push_back(data[static_cast<size_t>(r * cols + c)]);
    return out;
  }
};

TensorView shard_view(std::vector<float>& buf, const Matrix& m, int64_t r0, int64_t nr, int64_t c0, int64_t nc) {
  return TensorView::contiguous("float32", 4, buf.data(), {nr, nc}).as_shard({m.rows, m.cols}, {r0, c0});
}

// Loads `name` as [r0, r0+nr) x [c0, c0+nc) and compares with the truth.
bool loads_exactly(const std::string& store, const std::string& ckpt, const std::string& name, const Matrix& m,
                   int64_t r0, int64_t nr, int64_t c0, int64_t nc) {
  std::vector<float> out(static_cast<size_t>(nr * nc), -1.0f);
  StateDict sd;
  sd.add_tensor(name, shard_view(out, m, r0, nr, c0, nc));
  load(sd, Store::open_read_only(store), ckpt);
  return out == m.block(r0, nr, c0, nc);
}

}  // namespace

TEST_CASE("FSDP-style row shards saved on 4 ranks load as column shards on 2 and whole on 1") {
  TempDir dir("dist");
  Matrix w(512, 384, 1), v(100, 30, 2);  // v: uneven splits
  SaveOptions o;
  o.chunk_bytes = 16 << 10;
  auto errors = run_ranks(4, [&](int64_t r, ControlPlane& plane) {
    int64_t rows = 512 / 4, vr0 = r * 26, vrows = std::min<int64_t>(26, 100 - vr0);
    auto wb = w.block(r * rows, rows, 0, 384), vb = v.block(vr0, vrows, 0, 30);
    StateDict sd;
    sd.add_tensor("w", shard_view(wb, w, r * rows, rows, 0, 384));
    sd.add_tensor("v", shard_view(vb, v, vr0, vrows, 0, 30));
    sd.add_value("step", int64_t{10});
    save(sd, dir.path(), "step-10", plane, o);
  });
  for (auto& e : errors) CHECK(e == "");
  Store store = Store::open_read_only(dir.path());
  CHECK(store.checkpoint("step-10").world_size == 4);
  for (int64_t r = 0; r < 2; ++r) {
    CHECK(loads_exactly(dir.path(), "step-10", "w", w, 0, 512, r * 192, 192));
    CHECK(loads_exactly(dir.path(), "step-10", "v", v, 0, 100, r * 15, 15));
  }
  CHECK(loads_exactly(dir.path(), "step-10", "w", w, 0, 512, 0, 384));
  CHECK(verify(store).ok());
}

TEST_CASE("TP=2 x DP=4 on 8 ranks reshards to TP=4 x DP=2; replicas are written once") {
  TempDir dir("dist");
  Matrix w(256, 512, 3), b(1, 512, 4);
  SaveOptions o;
  o.chunk_bytes = 8 << 10;
  o.compression = Compression::kNone;
  std::vector<SaveResult> results(8);
  auto errors = run_ranks(8, [&](int64_t r, ControlPlane& plane) {
    const int64_t tp = r % 2, dp = r / 2, cols = 512 / 2;
    auto wb = w.block(0, 256, tp * cols, cols), bb = b.block(0, 1, tp * cols, cols);
    StateDict sd;
    sd.add_tensor("w", shard_view(wb, w, 0, 256, tp * cols, cols).as_replica(dp, 4));
    sd.add_tensor("b", shard_view(bb, b, 0, 1, tp * cols, cols).as_replica(dp, 4));
    results[r] = save(sd, dir.path(), "tp2dp4", plane, o);
  });
  for (auto& e : errors) CHECK(e == "");
  uint64_t written = 0, chunks = 0;
  for (auto& r : results) {
    written += r.written_bytes;
    chunks += r.chunks_written;
  }
  CHECK(written == (256 * 512 + 512) * 4);  // every byte once, whatever the replication
  int busy = 0;
  for (auto& r : results) busy += r.chunks_written > 0;
  CHECK(busy == 8);  // the replicas shared the work
  // TP=4 x DP=2: every rank loads a column quarter.
  for (int64_t tp = 0; tp < 4; ++tp) {
    CHECK(loads_exactly(dir.path(), "tp2dp4", "w", w, 0, 256, tp * 128, 128));
    CHECK(loads_exactly(dir.path(), "tp2dp4", "b", b, 0, 1, tp * 128, 128));
  }
}

TEST_CASE("a rank that throws mid-save fails the save on every rank; nothing becomes visible") {
  TempDir dir("dist");
  Matrix w(64, 64, 5);
  auto good = [&](int64_t r, ControlPlane& plane, const std::string& name) {
    auto wb = w.block(r * 16, 16, 0, 64);
    StateDict sd;
    sd.add_tensor("w", shard_view(wb, w, r * 16, 16, 0, 64));
    save(sd, dir.path(), name, plane);
  };
  for (auto& e : run_ranks(4, [&](int64_t r, ControlPlane& p) { good(r, p, "before"); })) CHECK(e == "");
  auto errors = run_ranks(4, [&](int64_t r, ControlPlane& plane) {
    if (r != 2) return good(r, plane, "after");
    auto wb = w.block(0, 16, 0, 64);
    StateDict sd;
    sd.add_tensor("w", shard_view(wb, w, 60, 16, 0, 64));  // runs past the global shape
    save(sd, dir.path(), "after", plane);
  });
  for (int64_t r = 0; r < 4; ++r) {
    CAPTURE(r);
    CHECK(has(errors[r], "save of checkpoint 'after' failed: rank 2: tensor 'w'"));
    CHECK(has(errors[r], "does not fit the global shape"));
  }
  Store store = Store::open_read_only(dir.path());
  REQUIRE(store.checkpoints().size() == 1);
  CHECK(loads_exactly(dir.path(), "before", "w", w, 0, 64, 0, 64));
  size_t packs = 0;
  for ([[maybe_unused]] auto& p : fs::directory_iterator(dir / "packs")) ++packs;
  CHECK(packs == 4);  // the failed save's packs were removed by their ranks
}

TEST_CASE("a rank that never reports (dead) fails the others within the timeout") {
  TempDir dir("dist");
  Matrix w(64, 64, 6);
  DistributedOptions d;
  d.timeout = std::chrono::milliseconds(800);
  auto start = std::chrono::steady_clock::now();
  auto errors = run_ranks(3, [&](int64_t r, ControlPlane& plane) {
    if (r == 1) return;  // dies before saving
    auto wb = w.block(r * 16, 16, 0, 64);
    StateDict sd;
    sd.add_tensor("w", shard_view(wb, w, r * 16, 16, 0, 64));
    save(sd, dir.path(), "c", plane, SaveOptions{}, d);
  });
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  CHECK(has(errors[0], "rank 1 did not report"));
  CHECK(has(errors[2], "rank 1 did not report"));
  CHECK(Store::open_read_only(dir.path()).checkpoints().empty());
}

TEST_CASE("the coordinator dying leaves the others failing cleanly") {
  TempDir dir("dist");
  Store::open(dir.path());  // exists, so the other ranks could open it
  DistributedOptions d;
  d.timeout = std::chrono::milliseconds(500);
  auto errors = run_ranks(2, [&](int64_t r, ControlPlane& plane) {
    if (r == 0) return;
    StateDict sd;
    sd.add_value("x", int64_t{1});
    save(sd, dir.path(), "c", plane, SaveOptions{}, d);
  });
  CHECK(has(errors[1], "the coordinator (rank 0) did not report"));
}

TEST_CASE("disagreeing ranks: dtypes, overlaps, gaps, an existing name") {
  TempDir dir("dist");
  Matrix w(8, 8, 7);
  auto attempt = [&](const std::string& name, const std::function<TensorView(int64_t, std::vector<float>&)>& view) {
    return run_ranks(2, [&](int64_t r, ControlPlane& plane) {
      std::vector<float> buf = w.block(0, 8, 0, 8);
      StateDict sd;
      sd.add_tensor("w", view(r, buf));
      save(sd, dir.path(), name, plane);
    });
  };
  auto e = attempt("dtype", [&](int64_t r, std::vector<float>& buf) {
    TensorView v = shard_view(buf, w, r * 4, 4, 0, 8);
    if (r == 1) v.dtype = "int32";
    return v;
  });
  CHECK(has(e[0], "tensor 'w'"));
  CHECK(has(e[1], "rank 1 saved dtype int32"));
  e = attempt("overlap", [&](int64_t r, std::vector<float>& buf) { return shard_view(buf, w, r * 3, 5, 0, 8); });
  CHECK(has(e[1], "overlap"));
  e = attempt("gap", [&](int64_t r, std::vector<float>& buf) { return shard_view(buf, w, r * 4, 3, 0, 8); });
  CHECK(has(e[0], "elements are not covered"));
  CHECK(has(e[0], "ranks 0, 1"));
  auto ok = attempt("fine", [&](int64_t r, std::vector<float>& buf) { return shard_view(buf, w, r * 4, 4, 0, 8); });
  CHECK(ok[0] == "");
  e = attempt("fine", [&](int64_t r, std::vector<float>& buf) { return shard_view(buf, w, r * 4, 4, 0, 8); });
  CHECK(has(e[0], "already exists"));
  CHECK(has(e[1], "already exists"));
  CHECK(Store::open_read_only(dir.path()).checkpoints().size() == 1);
}
