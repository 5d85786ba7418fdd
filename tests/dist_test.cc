// Distributed save with ranks as threads of one process (in-process control
// plane): resharding between world sizes and layouts, replicated boxes
// written once, and every way a rank can fail. The multi-process version over
// c10d's TCPStore is in c10d_test.cc.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <thread>
#include <typeinfo>

#include "catalog/catalog.h"
#include "dist/failure.h"
#include "api/store_access.h"
#include "tessera/checkpoint.h"
#include "tessera/distributed.h"
#include "tessera/error.h"
#include "tessera/inspect.h"
#include "test_util.h"

using namespace tessera;
using tessera::test::caught_on;
using tessera::test::caught_ranks;
using tessera::test::error_of;
using tessera::test::has;
using tessera::test::message_of;
using tessera::test::run_on;
using tessera::test::run_ranks;
using tessera::test::sourced_entry;
using tessera::test::TempDir;
using tessera::test::TestSource;
namespace fs = std::filesystem;

namespace {

// The distributed save as every rank makes it: open the store (read-write,
// created if missing), then the one save with options.plane set.
SaveResult save_on(const StateDict& sd, const std::string& path, const std::string& name, ControlPlane& plane,
                   SaveOptions o = {}) {
  Store store = Store::open(path);
  o.plane = &plane;
  return save(sd, store, name, o);
}

// As save_on, for a rank that failed before the save: it abstains.
[[noreturn]] void abstain_on(ErrorKind kind, const std::string& what, const std::string& name, ControlPlane& plane) {
  SaveOptions o;
  o.plane = &plane;
  abstain(kind, what, name, o);
}

// Whether `p` holds exactly an E: not a subclass of it, not a base.
template <class E>
bool threw_exactly(const std::exception_ptr& p) {
  if (!p) return false;
  try {
    std::rethrow_exception(p);
  } catch (const std::exception& e) {
    return typeid(e) == typeid(E);
  } catch (...) {
    return false;
  }
}

// Longer than the others wait for the outcome (2 x timeout) in the split tests.
constexpr auto kPastTheirWait = std::chrono::milliseconds(2500);

bool is_decision(const std::string& key) { return key.size() >= 9 && key.substr(key.size() - 9) == "/decision"; }

// A plane that forwards to another one, counting operations by kind. Tests
// slow rank 0 down or "kill" it around its compare_set of the decision key.
class Recorder : public ControlPlane {
 public:
  explicit Recorder(ControlPlane& inner) : inner_(inner) {}
  int64_t rank() const override { return inner_.rank(); }
  int64_t world_size() const override { return inner_.world_size(); }
  void set(const std::string& key, const std::string& value) override {
    if (count("set")) inner_.set(key, value);
  }
  std::optional<std::string> wait_get(const std::string& key, std::chrono::milliseconds timeout) override {
    if (!count("wait_get")) return std::nullopt;
    return inner_.wait_get(key, timeout);
  }
  int64_t add(const std::string& key, int64_t delta) override { return count("add") ? inner_.add(key, delta) : 0; }
  std::string compare_set(const std::string& key, const std::string& expected, const std::string& desired) override {
    if (!count("compare_set")) return desired;
    if (is_decision(key) && before_decision) before_decision();
    std::string now = inner_.compare_set(key, expected, desired);
    if (is_decision(key) && after_decision) after_decision(now);
    return now;
  }
  bool delete_key(const std::string& key) override { return count("delete") && inner_.delete_key(key); }

  int ops(const std::string& kind) const { return by_kind.count(kind) ? by_kind.at(kind) : 0; }
  int total() const {
    int n = 0;
    for (auto& [k, v] : by_kind) n += v;
    return n;
  }

  std::map<std::string, int> by_kind;
  std::function<void()> before_decision;
  std::function<void(const std::string&)> after_decision;  // gets the decision
  std::atomic<bool> dead{false};  // from then on, operations do nothing (the rank died)

 private:
  bool count(const std::string& kind) {
    if (dead) return false;
    ++by_kind[kind];
    return true;
  }
  ControlPlane& inner_;
};

// `world` recorders over one in-process map.
struct Recorded {
  std::vector<std::unique_ptr<ControlPlane>> inner;
  std::vector<std::unique_ptr<Recorder>> planes;
  explicit Recorded(int64_t world) : inner(in_process_control_planes(world)) {
    for (auto& p : inner) planes.push_back(std::make_unique<Recorder>(*p));
  }
  size_t keys() const { return in_process_key_count(*inner[0]); }
};

// Files left in the store's tmp/ (a save's report files must not stay).
size_t temp_files(const TempDir& dir) {
  size_t n = 0;
  if (fs::exists(dir / "tmp"))
    for ([[maybe_unused]] auto& f : fs::directory_iterator(dir / "tmp")) ++n;
  return n;
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
    save_on(sd, dir.path(), "step-10", plane, o);
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
    results[r] = save_on(sd, dir.path(), "tp2dp4", plane, o);
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
    save_on(sd, dir.path(), name, plane);
  };
  for (auto& e : run_ranks(4, [&](int64_t r, ControlPlane& p) { good(r, p, "before"); })) CHECK(e == "");
  auto caught = caught_ranks(4, [&](int64_t r, ControlPlane& plane) {
    if (r != 2) return good(r, plane, "after");
    auto wb = w.block(0, 16, 0, 64);
    StateDict sd;
    sd.add_tensor("w", shard_view(wb, w, 60, 16, 0, 64));  // runs past the global shape
    save_on(sd, dir.path(), "after", plane);
  });
  for (int64_t r = 0; r < 4; ++r) {
    CAPTURE(r);
    const std::string error = message_of(caught[r]);
    CHECK(has(error, "save of checkpoint 'after' failed: rank 2: tensor 'w'"));
    CHECK(has(error, "does not fit the global shape"));
    CHECK(threw_exactly<InvalidArgument>(caught[r]));  // on every rank, not only on rank 2
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
  SaveOptions d;
  d.timeout = std::chrono::milliseconds(800);
  auto start = std::chrono::steady_clock::now();
  auto caught = caught_ranks(3, [&](int64_t r, ControlPlane& plane) {
    if (r == 1) return;  // dies before saving
    auto wb = w.block(r * 16, 16, 0, 64);
    StateDict sd;
    sd.add_tensor("w", shard_view(wb, w, r * 16, 16, 0, 64));
    save_on(sd, dir.path(), "c", plane, d);
  });
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  for (int64_t r : {0, 2}) {
    CAPTURE(r);
    CHECK(has(message_of(caught[r]), "rank 1 did not report within 0.8 s"));
    CHECK(threw_exactly<Error>(caught[r]));
  }
  CHECK(Store::open_read_only(dir.path()).checkpoints().empty());
}

TEST_CASE("the coordinator dying leaves the others failing cleanly") {
  TempDir dir("dist");
  Store::open(dir.path());  // exists, so the other ranks could open it
  SaveOptions d;
  d.timeout = std::chrono::milliseconds(500);
  auto caught = caught_ranks(2, [&](int64_t r, ControlPlane& plane) {
    if (r == 0) return;
    StateDict sd;
    sd.add_value("x", int64_t{1});
    save_on(sd, dir.path(), "c", plane, d);
  });
  // It waited twice the timeout for rank 0, and says so (not "within 0.5 s").
  CHECK(has(message_of(caught[1]), "the coordinator (rank 0) did not report within 1.0 s"));
  CHECK(threw_exactly<Error>(caught[1]));
}

TEST_CASE("disagreeing ranks: dtypes, overlaps, gaps, an existing name") {
  TempDir dir("dist");
  Matrix w(8, 8, 7);
  std::vector<std::exception_ptr> caught;
  auto attempt = [&](const std::string& name, const std::function<TensorView(int64_t, std::vector<float>&)>& view) {
    caught = caught_ranks(2, [&](int64_t r, ControlPlane& plane) {
      std::vector<float> buf = w.block(0, 8, 0, 8);
      StateDict sd;
      sd.add_tensor("w", view(r, buf));
      save_on(sd, dir.path(), name, plane);
    });
    return std::vector<std::string>{message_of(caught[0]), message_of(caught[1])};
  };
  // Every rank throws the class of the failure (rank 0 found it committing).
  auto both_threw = [&](auto threw) { return threw(caught[0]) && threw(caught[1]); };
  auto e = attempt("dtype", [&](int64_t r, std::vector<float>& buf) {
    TensorView v = shard_view(buf, w, r * 4, 4, 0, 8);
    if (r == 1) v.dtype = "int32";
    return v;
  });
  CHECK(has(e[0], "tensor 'w'"));
  CHECK(has(e[1], "rank 1 saved dtype int32"));
  CHECK(both_threw(threw_exactly<InvalidArgument>));
  e = attempt("overlap", [&](int64_t r, std::vector<float>& buf) { return shard_view(buf, w, r * 3, 5, 0, 8); });
  CHECK(has(e[1], "overlap"));
  CHECK(both_threw(threw_exactly<InvalidArgument>));
  e = attempt("gap", [&](int64_t r, std::vector<float>& buf) { return shard_view(buf, w, r * 4, 3, 0, 8); });
  CHECK(has(e[0], "elements are not covered"));
  CHECK(has(e[0], "ranks 0, 1"));
  CHECK(both_threw(threw_exactly<InvalidArgument>));
  auto ok = attempt("fine", [&](int64_t r, std::vector<float>& buf) { return shard_view(buf, w, r * 4, 4, 0, 8); });
  CHECK(ok[0] == "");
  e = attempt("fine", [&](int64_t r, std::vector<float>& buf) { return shard_view(buf, w, r * 4, 4, 0, 8); });
  CHECK(has(e[0], "already exists"));
  CHECK(has(e[1], "already exists"));
  CHECK(both_threw(threw_exactly<AlreadyExistsError>));
  CHECK(Store::open_read_only(dir.path()).checkpoints().size() == 1);
}

namespace {

// Rows [r * rows, (r + 1) * rows) of `w` from rank r, all columns.
void save_rows(const Matrix& w, int64_t r, int64_t row0, const std::string& store, const std::string& name,
               ControlPlane& plane, const SaveOptions& d = {}) {
  const int64_t rows = w.rows / plane.world_size();
  auto wb = w.block(r * rows, rows, 0, w.cols);
  StateDict sd;
  sd.add_tensor("w", shard_view(wb, w, row0, rows, 0, w.cols));
  save_on(sd, store, name, plane, d);
}

std::string token_of(const std::string& store, const std::string& name) {
  auto c = StoreAccess::impl(Store::open_read_only(store)).catalog.find_checkpoint(name);
  return c ? c->save_token : "(absent)";
}

}  // namespace

TEST_CASE("a save leaves no keys in the control plane and no report files, whether it commits or fails") {
  TempDir dir("dist");
  Matrix w(64, 64, 8);
  auto planes = in_process_control_planes(4);  // one set of planes for all saves, as a job keeps it
  // Rank r saves rows [16 r, 16 r + 16) at row `row0(r)`.
  auto attempt = [&](const std::string& name, const std::function<int64_t(int64_t)>& row0) {
    return run_on(planes, [&](int64_t r, ControlPlane& p) { save_rows(w, r, row0(r), dir.path(), name, p); });
  };
  auto rows = [](int64_t r) { return r * 16; };
  for (auto& e : attempt("ok", rows)) CHECK(e == "");
  CHECK(in_process_key_count(*planes[0]) == 0);
  CHECK(temp_files(dir) == 0);

  auto e = attempt("bad", [](int64_t r) { return r == 2 ? int64_t{60} : r * 16; });  // rank 2 fails writing
  for (int64_t r = 0; r < 4; ++r) CHECK(has(e[r], "failed: rank 2: tensor 'w'"));
  CHECK(in_process_key_count(*planes[0]) == 0);

  e = attempt("overlap", [](int64_t r) { return r == 3 ? int64_t{32} : r * 16; });  // rank 0's validation fails
  for (int64_t r = 0; r < 4; ++r) CHECK(has(e[r], "overlap"));
  CHECK(in_process_key_count(*planes[0]) == 0);

  e = attempt("ok", rows);  // rank 0 refuses before anyone writes
  for (int64_t r = 0; r < 4; ++r) CHECK(has(e[r], "already exists"));
  CHECK(in_process_key_count(*planes[0]) == 0);
  CHECK(temp_files(dir) == 0);
  CHECK(Store::open_read_only(dir.path()).checkpoints().size() == 1);
}

TEST_CASE("Store operations per rank do not grow with the world size; rank 0 gathers in one wait") {
  for (int64_t world : {4, 16}) {
    CAPTURE(world);
    TempDir dir("dist");
    Recorded rec(world);
    Matrix w(world * 4, 8, 9);
    auto errors = run_on(rec.planes, [&](int64_t r, ControlPlane& p) { save_rows(w, r, r * 4, dir.path(), "c", p); });
    for (auto& e : errors) CHECK(e == "");
    const Recorder& zero = *rec.planes[0];
    CHECK(zero.ops("wait_get") == 1);  // all_in: one wait for every rank at once
    CHECK(zero.ops("set") == 2);       // ready, outcome
    CHECK(zero.ops("compare_set") == 1);
    CHECK(zero.ops("add") == 1);
    CHECK(zero.total() <= 11);
    int sets = 0, deletes = zero.ops("delete"), plain = 0;
    for (int64_t r = 1; r < world; ++r) {
      CAPTURE(r);
      const Recorder& p = *rec.planes[r];
      CHECK(p.ops("wait_get") == 2);  // ready, outcome
      CHECK(p.ops("add") == 2);       // arrived, left
      CHECK(p.ops("compare_set") == 0);
      CHECK(p.total() <= 8);
      sets += p.ops("set");
      deletes += p.ops("delete");
      plain += p.total() == 4;
    }
    CHECK(sets == 1);     // only the last to arrive sets all_in
    CHECK(deletes == 6);  // ready, arrived, all_in (rank 0); outcome, decision, left (the last to leave)
    CHECK(plain >= world - 3);
    CHECK(rec.keys() == 0);
  }
}

TEST_CASE("no split outcome: rank 0 decides to commit, then outlasts the others' timeout; every rank succeeds") {
  TempDir dir("dist");
  Matrix w(48, 16, 10);
  Recorded rec(3);
  SaveOptions d;
  d.timeout = std::chrono::milliseconds(500);  // generous: the CPU is shared
  rec.planes[0]->after_decision = [](const std::string&) { std::this_thread::sleep_for(kPastTheirWait); };
  auto errors =
      run_on(rec.planes, [&](int64_t r, ControlPlane& p) { save_rows(w, r, r * 16, dir.path(), "c", p, d); });
  for (int64_t r = 0; r < 3; ++r) CHECK_MESSAGE(errors[r] == "", errors[r]);
  // They stopped waiting, tried to abort, and found "commit".
  for (int64_t r = 1; r < 3; ++r) CHECK(rec.planes[r]->ops("compare_set") == 1);
  CHECK(token_of(dir.path(), "c").size() == 16);
  CHECK(loads_exactly(dir.path(), "c", "w", w, 0, 48, 0, 16));
  CHECK(rec.keys() == 0);
}

TEST_CASE("no split outcome: a rank that stops waiting first aborts; rank 0 rolls back; every rank fails alike") {
  TempDir dir("dist");
  Matrix w(48, 16, 11);
  Recorded rec(3);
  SaveOptions d;
  d.timeout = std::chrono::milliseconds(500);  // generous: the CPU is shared
  rec.planes[0]->before_decision = [] { std::this_thread::sleep_for(kPastTheirWait); };
  auto errors =
      run_on(rec.planes, [&](int64_t r, ControlPlane& p) { save_rows(w, r, r * 16, dir.path(), "c", p, d); });
  for (int64_t r = 0; r < 3; ++r) {
    CAPTURE(r);
    CHECK(has(errors[r], "save of checkpoint 'c' failed: rank "));
    CHECK(has(errors[r], "gave up waiting for the coordinator (rank 0) and aborted the save after 1.0 s"));
    CHECK(errors[r] == errors[0]);
  }
  CHECK(Store::open_read_only(dir.path()).checkpoints().empty());
  CHECK(fs::is_empty(dir / "packs"));  // every rank removed its packs
  CHECK(temp_files(dir) == 0);
  CHECK(rec.keys() == 0);
}

TEST_CASE("no split outcome: rank 0 commits and dies before reporting; the others learn it from the catalog") {
  TempDir dir("dist");
  Matrix w(48, 16, 12);
  Recorded rec(3);
  SaveOptions d;
  d.timeout = std::chrono::milliseconds(500);  // generous: the CPU is shared
  Recorder& zero = *rec.planes[0];
  zero.after_decision = [&](const std::string&) { zero.dead = true; };  // its commit goes on; it reports nothing
  auto errors =
      run_on(rec.planes, [&](int64_t r, ControlPlane& p) { save_rows(w, r, r * 16, dir.path(), "c", p, d); });
  for (int64_t r = 1; r < 3; ++r) CHECK_MESSAGE(errors[r] == "", errors[r]);
  CHECK(token_of(dir.path(), "c").size() == 16);
  CHECK(loads_exactly(dir.path(), "c", "w", w, 0, 48, 0, 16));
}

TEST_CASE("no split outcome: rank 0 dies inside its transaction after deciding; the others fail, nothing committed") {
  TempDir dir("dist");
  Matrix w(48, 16, 13);
  Recorded rec(3);
  SaveOptions d;
  d.timeout = std::chrono::milliseconds(500);  // generous: the CPU is shared
  Recorder& zero = *rec.planes[0];
  zero.after_decision = [&](const std::string&) {
    zero.dead = true;
    throw std::runtime_error("killed");  // the transaction rolls back, as SQLite does for a dead writer
  };
  auto errors =
      run_on(rec.planes, [&](int64_t r, ControlPlane& p) { save_rows(w, r, r * 16, dir.path(), "c", p, d); });
  for (int64_t r = 1; r < 3; ++r) {
    CAPTURE(r);
    CHECK(has(errors[r], "the coordinator (rank 0) decided to commit but did not report within 1.5 s"));
    CHECK(has(errors[r], "the checkpoint is not in the catalog"));
  }
  CHECK(token_of(dir.path(), "c") == "(absent)");
}

namespace {

// A state whose only entry fails inside the save with `raise` (when its
// bytes are staged, as a device tensor's would be).
StateDict failing_state(const std::function<void()>& raise) {
  TensorView scalar;
  scalar.dtype = "uint8";
  scalar.elem_size = 1;
  auto source = std::make_shared<TestSource>();
  source->on_save = [raise]() -> TensorView {
    raise();
    return {};
  };
  StateDict sd;
  sd.add_tensor("x", sourced_entry(scalar, source));
  return sd;
}

// One class a failing rank may throw, and the class every rank must then throw.
struct Thrown {
  const char* name;
  std::function<void(const std::string&)> raise;
  bool (*expected)(const std::exception_ptr&);
};

}  // namespace

TEST_CASE("every rank throws the class of the failure, whichever rank failed, with the same message") {
  // Words that the protocol once read the class from must not decide it.
  const std::string text = "injected ('already exists', 'is not a tessera store' do not decide the class)";
  const std::vector<Thrown> classes{
      {"Error", [](const std::string& m) { throw Error(m); }, threw_exactly<Error>},
      {"StoreError", [](const std::string& m) { throw StoreError(m); }, threw_exactly<StoreError>},
      {"NotFoundError", [](const std::string& m) { throw NotFoundError(m); }, threw_exactly<NotFoundError>},
      {"AlreadyExistsError", [](const std::string& m) { throw AlreadyExistsError(m); },
       threw_exactly<AlreadyExistsError>},
      {"InvalidArgument", [](const std::string& m) { throw InvalidArgument(m); }, threw_exactly<InvalidArgument>},
      {"CorruptionError", [](const std::string& m) { throw CorruptionError(m); }, threw_exactly<CorruptionError>},
      // Not tessera's: the base Error everywhere, the failing rank included.
      {"std::runtime_error", [](const std::string& m) { throw std::runtime_error(m); }, threw_exactly<Error>},
  };
  TempDir dir("dist");
  auto planes = in_process_control_planes(3);
  int saves = 0;
  for (const Thrown& c : classes)
    for (int64_t bad : {0, 2}) {
      CAPTURE(c.name);
      CAPTURE(bad);
      auto caught = caught_on(planes, [&](int64_t r, ControlPlane& p) {
        StateDict sd = r == bad ? failing_state([&] { c.raise(text); }) : StateDict{};
        if (r != bad) sd.add_value("y", int64_t{r});
        save_on(sd, dir.path(), "c" + std::to_string(saves), p);
      });
      ++saves;
      for (int64_t r = 0; r < 3; ++r) {
        CAPTURE(r);
        CHECK(c.expected(caught[r]));
        CHECK(has(message_of(caught[r]), "failed: rank " + std::to_string(bad) + ": " + text));
        CHECK(message_of(caught[r]) == message_of(caught[0]));
      }
      CHECK(in_process_key_count(*planes[0]) == 0);
    }
  CHECK(Store::open_read_only(dir.path()).checkpoints().empty());
}

TEST_CASE("ranks unable to open the store throw before the save; rank 0 refusing the options: every rank throws its class") {
  TempDir dir("dist");
  fs::create_directories(dir / "store");
  std::ofstream(dir / "store/catalog.db") << "not a database, not even close: sixteen+ bytes of text";
  auto caught = caught_ranks(3, [&](int64_t, ControlPlane& p) {
    StateDict sd;
    sd.add_value("x", int64_t{1});
    save_on(sd, dir / "store", "c", p);
  });
  for (int64_t r = 0; r < 3; ++r) {
    CAPTURE(r);
    CAPTURE(message_of(caught[r]));
    CHECK(threw_exactly<StoreError>(caught[r]));
    CHECK(has(message_of(caught[r]), "catalog.db"));
  }
  SaveOptions o;
  o.keep_last = -1;
  caught = caught_ranks(3, [&](int64_t r, ControlPlane& p) {
    StateDict sd;
    sd.add_value("x", int64_t{r});
    save_on(sd, dir.path(), "c", p, o);
  });
  for (int64_t r = 0; r < 3; ++r) {
    CAPTURE(r);
    CHECK(threw_exactly<InvalidArgument>(caught[r]));
    CHECK(has(message_of(caught[r]), "keep_last must be 0 (keep all) or positive, got -1"));
  }
  CHECK(Store::open_read_only(dir.path()).checkpoints().empty());
}

TEST_CASE("a rank that abstains (it failed before the save) fails the save on every rank with its cause and class") {
  TempDir dir("dist");
  auto planes = in_process_control_planes(3);
  int saves = 0;
  for (int64_t bad : {0, 2}) {
    CAPTURE(bad);
    const std::string name = "c" + std::to_string(saves++);
    auto caught = caught_on(planes, [&](int64_t r, ControlPlane& p) {
      if (r == bad) abstain_on(ErrorKind::kCorruption, "injected before the save", name, p);
      StateDict sd;
      sd.add_value("y", int64_t{r});
      save_on(sd, dir.path(), name, p);
    });
    for (int64_t r = 0; r < 3; ++r) {
      CAPTURE(r);
      CHECK(threw_exactly<CorruptionError>(caught[r]));
      CHECK(message_of(caught[r]) ==
            "save of checkpoint '" + name + "' failed: rank " + std::to_string(bad) + ": injected before the save");
    }
    CHECK(in_process_key_count(*planes[0]) == 0);
  }
  CHECK(Store::open_read_only(dir.path()).checkpoints().empty());
  CHECK(temp_files(dir) == 0);
}

TEST_CASE("a rank that cannot open the store abstains with the open's error: every rank fails with it, not a timeout") {
  TempDir dir("dist");
  const std::string not_a_store = dir.path() + "/a-file";
  std::ofstream(not_a_store) << "not a store";
  auto planes = in_process_control_planes(3);
  int saves = 0;
  for (int64_t bad : {1, 0}) {
    CAPTURE(bad);
    const std::string name = "c" + std::to_string(saves++);
    std::string open_error;
    auto caught = caught_on(planes, [&](int64_t r, ControlPlane& p) {
      SaveOptions o;
      o.plane = &p;
      o.timeout = std::chrono::seconds(600);  // waiting for it would hang the test
      std::optional<Store> store;
      try {
        store = Store::open(r == bad ? not_a_store + "/store" : dir.path() + "/store");
      } catch (const Error& e) {
        open_error = e.what();
        abstain(error_kind(e), e.what(), name, o);
      }
      StateDict sd;
      sd.add_value("y", int64_t{r});
      save(sd, *store, name, o);
    });
    REQUIRE(!open_error.empty());
    for (int64_t r = 0; r < 3; ++r) {
      CAPTURE(r);
      CHECK(threw_exactly<StoreError>(caught[r]));
      CHECK(message_of(caught[r]) ==
            "save of checkpoint '" + name + "' failed: rank " + std::to_string(bad) + ": " + open_error);
    }
    CHECK(in_process_key_count(*planes[0]) == 0);
  }
  CHECK(Store::open_read_only(dir.path() + "/store").checkpoints().empty());
  // Rank 1's save failed after the others wrote their parts (removed again);
  // rank 0's before any rank wrote.
  CHECK(test::files_in(dir.path() + "/store", "packs").empty());
  CHECK(test::files_in(dir.path() + "/store", "tmp").empty());
}

namespace {

// A plane over a slow Store: a wait shorter than its round trip times out
// even when the key is there (c10d's TCPStore on a loaded host).
class SlowStore : public ControlPlane {
 public:
  explicit SlowStore(ControlPlane& inner) : inner_(inner) {}
  int64_t rank() const override { return inner_.rank(); }
  int64_t world_size() const override { return inner_.world_size(); }
  void set(const std::string& key, const std::string& value) override { inner_.set(key, value); }
  std::optional<std::string> wait_get(const std::string& key, std::chrono::milliseconds timeout) override {
    if (timeout < kRoundTrip) {
      std::this_thread::sleep_for(timeout);
      return std::nullopt;
    }
    return inner_.wait_get(key, timeout);
  }
  int64_t add(const std::string& key, int64_t delta) override { return inner_.add(key, delta); }
  std::string compare_set(const std::string& key, const std::string& expected, const std::string& desired) override {
    return inner_.compare_set(key, expected, desired);
  }
  bool delete_key(const std::string& key) override { return inner_.delete_key(key); }

 private:
  static constexpr std::chrono::milliseconds kRoundTrip{50};
  ControlPlane& inner_;
};

}  // namespace

TEST_CASE("a failing rank's cause and class reach every rank over a slow Store (not 'did not report')") {
  // CI once saw rank 2's error read with a 1 ms wait: rank 0 reported it as a rank that did not report.
  TempDir dir("dist");
  auto inner = in_process_control_planes(3);
  std::vector<std::unique_ptr<SlowStore>> planes;
  for (auto& p : inner) planes.push_back(std::make_unique<SlowStore>(*p));
  auto caught = caught_on(planes, [&](int64_t r, ControlPlane& p) {
    if (r == 2) abstain_on(ErrorKind::kCorruption, "injected before the save", "c", p);
    StateDict sd;
    sd.add_value("y", int64_t{r});
    save_on(sd, dir.path(), "c", p);
  });
  for (int64_t r = 0; r < 3; ++r) {
    CAPTURE(r);
    CHECK(threw_exactly<CorruptionError>(caught[r]));
    CHECK(message_of(caught[r]) == "save of checkpoint 'c' failed: rank 2: injected before the save");
  }
  CHECK(in_process_key_count(*inner[0]) == 0);
  CHECK(Store::open_read_only(dir.path()).checkpoints().empty());
}

TEST_CASE("failures travel as <kind>:<message>; the lowest failing rank decides the class") {
  const dist::Failure f{ErrorKind::kInvalidArgument, "a: b"};
  CHECK(f.encode() == "4:a: b");
  const dist::Failure back = dist::Failure::decode(f.encode());
  CHECK(back.kind == ErrorKind::kInvalidArgument);
  CHECK(back.what == "a: b");
  CHECK(dist::Failure::decode("no kind here").kind == ErrorKind::kError);
  CHECK(dist::Failure::decode("no kind here").what == "no kind here");
  CHECK(dist::kind_number(nullptr) == -1);
  CHECK(dist::kind_number(std::make_exception_ptr(NotFoundError("x"))) == static_cast<int64_t>(ErrorKind::kNotFound));
  CHECK(dist::kind_number(std::make_exception_ptr(42)) == 0);
  CHECK(agree_on_failures({-1, -1}).ok());
  const FailureAgreement a = agree_on_failures({-1, 5, -1, 2});
  CHECK(a.failed == std::vector<int64_t>{1, 3});
  CHECK(a.kind == 5);
  CHECK(a.ranks() == "1, 3");
}

namespace {

// Opens (creating if missing) the store at `path` and saves checkpoint
// "c<i>" into it; returns the error, "" if none.
std::string open_and_save(const std::string& path, int i) {
  return error_of([&] {
    Store store = Store::open(path);
    StateDict sd;
    sd.add_value("i", int64_t{i});
    save(sd, store, "c" + std::to_string(i));
  });
}

}  // namespace

TEST_CASE("ranks opening a store that does not exist yet all at once: one creates it, all use it") {
  TempDir dir("dist");
  constexpr int kOpeners = 8;
  // Threads of one process, each with its own connection.
  {
    const std::string path = dir / "threads";
    std::atomic<int> waiting{kOpeners};
    std::vector<std::string> errors(kOpeners);
    std::vector<std::thread> threads;
    for (int i = 0; i < kOpeners; ++i)
      threads.emplace_back([&, i] {
        --waiting;
        while (waiting > 0) std::this_thread::yield();  // start together
        errors[i] = open_and_save(path, i);
      });
    for (auto& t : threads) t.join();
    for (int i = 0; i < kOpeners; ++i) CHECK(errors[i] == "");
    CHECK(Store::open_read_only(path).checkpoints().size() == kOpeners);
  }
  // Processes: each opens, creating if missing, and saves one checkpoint.
  for (int round = 0; round < 3; ++round) {
    const std::string path = dir / ("procs-" + std::to_string(round));
    std::vector<pid_t> pids;
    for (int i = 0; i < kOpeners; ++i) {
      const pid_t pid = fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        const std::string error = open_and_save(path, i);
        if (!error.empty()) std::fprintf(stderr, "opener %d: %s\n", i, error.c_str());
        _exit(error.empty() ? 0 : 1);
      }
      pids.push_back(pid);
    }
    int failed = 0;
    for (pid_t pid : pids) {
      int status = 0;
      waitpid(pid, &status, 0);
      failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    CHECK(failed == 0);
    Store store = Store::open_read_only(path);
    CHECK(store.checkpoints().size() == kOpeners);
    CHECK(verify(store).ok());
  }
}

TEST_CASE("save with options.plane on 4 ranks: the chunks a single-process save of the whole makes, world_size 4") {
  TempDir dir("dist");
  Matrix w(256, 64, 11);
  SaveOptions o;
  o.chunk_bytes = 64 * 4 * 16;  // 16 rows a chunk: each rank's 64 rows are 4 whole chunks
  std::vector<SaveResult> results(4);
  auto planes = in_process_control_planes(4);
  auto errors = run_on(planes, [&](int64_t r, ControlPlane& plane) {
    auto wb = w.block(r * 64, 64, 0, 64);
    StateDict sd;
    sd.add_tensor("w", shard_view(wb, w, r * 64, 64, 0, 64));
    sd.add_value("step", int64_t{7});
    Store store = Store::open(dir.path());  // every rank opens the store itself
    SaveOptions mine = o;
    mine.plane = &plane;
    results[r] = save(sd, store, "dist", mine);
  });
  for (auto& e : errors) CHECK(e == "");
  CHECK(in_process_key_count(*planes[0]) == 0);
  uint64_t logical = 0, chunks = 0;
  for (auto& r : results) {
    logical += r.logical_bytes;
    chunks += r.chunks_written;
    CHECK(r.chunks_written == 4);
  }
  CHECK(logical == 256 * 64 * 4);
  CHECK(chunks == 16);
  // The whole matrix saved by one process: the same chunks, all deduplicated.
  Store store = Store::open(dir.path());
  auto whole = w.block(0, 256, 0, 64);
  StateDict sd;
  sd.add_tensor("w", shard_view(whole, w, 0, 256, 0, 64));
  sd.add_value("step", int64_t{7});
  const SaveResult single = save(sd, store, "single", o);
  CHECK(single.logical_bytes == logical);
  CHECK(single.chunks == 16);
  CHECK(single.chunks_written == 0);
  const CheckpointSummary a = store.checkpoint("dist"), b = store.checkpoint("single");
  CHECK(a.world_size == 4);
  CHECK(b.world_size == 1);
  CHECK(a.logical_bytes == b.logical_bytes);
  CHECK(a.stored_bytes == b.stored_bytes);
  CHECK(a.tensors == b.tensors);
  CHECK(a.values == b.values);
  CHECK(loads_exactly(dir.path(), "dist", "w", w, 0, 256, 0, 64));
  CHECK(verify(store).ok());
}

namespace {

// A plane that claims rank `claimed` (out of range for its world).
class ClaimsRank : public Recorder {
 public:
  ClaimsRank(ControlPlane& inner, int64_t claimed) : Recorder(inner), claimed_(claimed) {}
  int64_t rank() const override { return claimed_; }

 private:
  int64_t claimed_;
};

}  // namespace

TEST_CASE("save with a plane whose rank is outside its world size is refused, naming both, before the plane is used") {
  TempDir dir("dist");
  auto inner = in_process_control_planes(4);
  Store store = Store::open(dir.path());
  StateDict sd;
  sd.add_value("x", int64_t{1});
  for (int64_t claimed : {4, -1}) {
    CAPTURE(claimed);
    ClaimsRank plane(*inner[0], claimed);
    SaveOptions o;
    o.plane = &plane;
    const std::string e = error_of([&] { save(sd, store, "c", o); });
    CHECK(e == "save of checkpoint 'c': the control plane's rank " + std::to_string(claimed) +
                   " is outside its world size 4");
    CHECK_THROWS_AS(save(sd, store, "c", o), InvalidArgument);
    CHECK_THROWS_AS(abstain(ErrorKind::kCorruption, "x", "c", o), InvalidArgument);
    CHECK(plane.total() == 0);  // not one operation
    CHECK(plane.next_save_id() == 0);  // and no save numbered
  }
  CHECK(in_process_key_count(*inner[0]) == 0);
  CHECK(store.checkpoints().empty());
  SaveOptions none;
  CHECK_THROWS_AS(abstain(ErrorKind::kCorruption, "x", "c", none), InvalidArgument);
}

TEST_CASE("an empty checkpoint name is refused on every rank before any rank writes") {
  TempDir dir("dist");
  auto caught = caught_ranks(2, [&](int64_t r, ControlPlane& p) {
    Store store = Store::open(dir.path());
    StateDict sd;
    sd.add_value("x", r);
    SaveOptions o;
    o.plane = &p;
    save(sd, store, "", o);
  });
  for (int64_t r = 0; r < 2; ++r) {
    CAPTURE(r);
    CHECK(threw_exactly<InvalidArgument>(caught[r]));
    CHECK(message_of(caught[r]) == "save: the checkpoint name must not be empty");
  }
  CHECK(test::files_in(dir.path(), "packs").empty());
}

TEST_CASE("rank 0's store open read-only: every rank throws StoreError naming it") {
  TempDir dir("dist");
  Store::open(dir.path());
  auto caught = caught_ranks(2, [&](int64_t r, ControlPlane& p) {
    Store store = r == 0 ? Store::open_read_only(dir.path()) : Store::open(dir.path());
    StateDict sd;
    sd.add_value("x", r);
    SaveOptions o;
    o.plane = &p;
    save(sd, store, "c", o);
  });
  for (int64_t r = 0; r < 2; ++r) {
    CAPTURE(r);
    CHECK(threw_exactly<StoreError>(caught[r]));
    CHECK(message_of(caught[r]) == "store '" + dir.path() + "' is open read-only; cannot save 'c'");
  }
}
