// The engine end to end, without LibTorch: save state dicts (single process
// and as several "ranks" through write_part + commit_parts), load them
// into other layouts, and feed every kind of bad input and damage.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <typeinfo>

#include "api/store_access.h"
#include "io/env.h"
#include "io/fault_injection_env.h"
#include "tessera/checkpoint.h"
#include "tessera/error.h"
#include "tessera/inspect.h"
#include "tessera/parts.h"
#include "test_util.h"

using namespace tessera;
using tessera::test::TempDir;
using tessera::test::error_of;
using tessera::test::flip_byte;
using tessera::test::has;
using tessera::test::live_threads;
using tessera::test::sourced_entry;
using tessera::test::TestSource;

namespace {

// The store at `dir` on a disk that fills up after `appends` pack writes.
Store open_with_full_disk(const std::string& dir, int appends) {
  auto env = std::make_shared<io::FaultInjectionEnv>(posix_env());
  env->let_sqlite_use_os_files(true);  // as `store` beside it: the catalog's locks are the OS's
  auto writes = std::make_shared<int>(0);
  env->set_rule([writes, appends](const io::FaultInjectionEnv::Call& c) {
    return c.op == io::FaultInjectionEnv::Op::kAppend && ++*writes > appends ? ENOSPC : 0;
  });
  StoreOptions o;
  o.env = env;
  return Store::open(dir, o);
}

}  // namespace
namespace fs = std::filesystem;

namespace {



const char* dtype_for(size_t elem) {
  switch (elem) {
    case 1: return "uint8";
    case 2: return "bfloat16";
    case 4: return "float32";
    default: return "float64";
  }
}

// A global tensor held in full, in row-major order.
struct Global {
  Shape shape;
  size_t elem;
  std::vector<std::byte> data;

  Box whole() const { return Box::whole(shape); }
  // A dense copy of `box`.
  std::vector<std::byte> extract(const Box& box) const {
    std::vector<std::byte> out(static_cast<size_t>(box.volume()) * elem);
    copy_region(box, StridedView::dense(whole(), const_cast<std::byte*>(data.data())),
                StridedView::dense(box, out.data()), elem);
    return out;
  }
};

// Splits `box` into a random grid of sub-boxes with uneven edges.
std::vector<Box> random_partition(const Shape& shape, std::mt19937_64& rng, int max_cuts) {
  std::vector<std::vector<int64_t>> cuts(shape.size());
  for (size_t d = 0; d < shape.size(); ++d) {
    cuts[d] = {0, shape[d]};
    int n = static_cast<int>(rng() % static_cast<uint64_t>(max_cuts + 1));
    for (int i = 0; i < n && shape[d] > 1; ++i) cuts[d].push_back(1 + static_cast<int64_t>(rng() % (shape[d] - 1)));
    std::sort(cuts[d].begin(), cuts[d].end());
    cuts[d].erase(std::unique(cuts[d].begin(), cuts[d].end()), cuts[d].end());
  }
  std::vector<Box> out{Box{}};
  for (size_t d = 0; d < shape.size(); ++d) {
    std::vector<Box> next;
    for (const Box& b : out)
      for (size_t i = 0; i + 1 < cuts[d].size(); ++i) {
        Box c = b;
        c.offsets.push_back(cuts[d][i]);
        c.sizes.push_back(cuts[d][i + 1] - cuts[d][i]);
        next.push_back(c);
      }
    out = next;
  }
  return out;
}

TensorView view_of(const Global& g, std::vector<std::byte>& buf, const Box& box) {
  TensorView v = TensorView::contiguous(dtype_for(g.elem), g.elem, buf.data(), box.sizes);
  return v.as_shard(g.shape, box.offsets);
}

}  // namespace

TEST_CASE("property: random tensors saved in random layouts load bit-exact into random layouts") {
  std::mt19937_64 rng(1234);
  for (int iter = 0; iter < 60; ++iter) {
    CAPTURE(iter);
    TempDir dir("prop");
    Store store = Store::open(dir.path());
    std::vector<Global> tensors;
    int n_tensors = 1 + static_cast<int>(rng() % 3);
    for (int t = 0; t < n_tensors; ++t) {
      Global g;
      size_t rank = rng() % 5;
      for (size_t d = 0; d < rank; ++d) g.shape.push_back(1 + static_cast<int64_t>(rng() % (rank > 2 ? 9 : 40)));
      g.elem = size_t{1} << (rng() % 4);
      g.data = (rng() % 2) ? test::random_bytes(static_cast<size_t>(volume(g.shape)) * g.elem, rng())
                           : test::smooth_bytes(static_cast<size_t>(volume(g.shape)) * g.elem, rng());
      tensors.push_back(std::move(g));
    }
    SaveOptions so;
    so.chunk_bytes = 16 << (rng() % 6);
    so.compression = (rng() % 2) ? Compression::kNone : Compression::kAuto;
    so.threads = 1 + rng() % 3;
    std::vector<std::vector<std::byte>> buffers;
    // A rank's state dict holds one shard per tensor name, so save extra shards as extra ranks.
    std::vector<std::string> manifests;
    {
      int64_t next_rank = 0;
      for (int t = 0; t < n_tensors; ++t) {
        auto shards = random_partition(tensors[t].shape, rng, 2);
        for (const Box& b : shards) {
          StateDict sd;
          buffers.push_back(tensors[t].extract(b));
          sd.add_tensor("t" + std::to_string(t), view_of(tensors[t], buffers.back(), b));
          manifests.push_back(write_part(sd, store, so, next_rank++).manifest);
        }
      }
      commit_parts(store, "ckpt", manifests, next_rank, so);
    }
    REQUIRE(verify(store).ok());
    catalog::Catalog& cat = StoreAccess::impl(store).catalog;
    const std::vector<catalog::TensorRecord> committed = cat.tensors(cat.find_checkpoint("ckpt")->id);

    // Load: a random partition of each tensor, each part into a strided target.
    Store reader = Store::open_read_only(dir.path());
    for (int t = 0; t < n_tensors; ++t) {
      const Global& g = tensors[t];
      for (const Box& b : random_partition(g.shape, rng, 2)) {
        Shape layout = b.sizes;  // rows padded by one element: a non-contiguous target
        if (b.rank() > 0 && (rng() % 2)) layout.back() += 1;
        Shape strides = contiguous_strides(layout);
        std::vector<std::byte> out(static_cast<size_t>(volume(layout)) * g.elem, std::byte{0xAB});
        TensorView v{dtype_for(g.elem), g.elem, out.data(), b.sizes, strides, g.shape, b.offsets};
        StateDict sd;
        sd.add_tensor("t" + std::to_string(t), v);
        LoadOptions lo;
        lo.verify = rng() % 2;
        lo.strict = true;
        LoadResult r = load(sd, reader, "ckpt", lo);
        // bit-exact
        std::vector<std::byte> got(static_cast<size_t>(b.volume()) * g.elem);
        copy_region(b, StridedView{b, out.data(), strides}, StridedView::dense(b, got.data()), g.elem);
        REQUIRE(got == g.extract(b));
        // only the chunks that intersect the box are read
        uint64_t intersecting = 0;
        for (const auto& rec : committed)
          if (rec.name == "t" + std::to_string(t))
            for (const auto& p : rec.pieces) intersecting += intersect(p.box, b) ? 1 : 0;
        CHECK(r.chunks_read == intersecting);
        // raw chunks without verification: exactly the bytes the box needs
        if (so.compression == Compression::kNone && !lo.verify)
          CHECK(r.bytes_read == static_cast<uint64_t>(b.volume()) * g.elem);
        else
          CHECK(r.bytes_read >= (so.compression == Compression::kNone ? static_cast<uint64_t>(b.volume()) * g.elem : 0));
      }
    }
  }
}

namespace {

// A small state: two float32 matrices (random, so raw chunks), a scalar, values.
struct Fixture {
  TempDir dir{"store"};
  std::vector<float> w = std::vector<float>(64 * 1024), b = std::vector<float>(1000);
  double scalar = 3.25;

  Fixture() {
    std::mt19937 rng(9);
    std::normal_distribution<float> n;
    for (auto& x : w) x = n(rng);
    for (auto& x : b) x = n(rng);
  }
  StateDict state() {
    StateDict sd;
    sd.add_tensor("model.w", TensorView::contiguous("float32", 4, w.data(), {64, 1024}));
    sd.add_tensor("model.b", TensorView::contiguous("float32", 4, b.data(), {1000}));
    sd.add_tensor("scalar", TensorView::contiguous("float64", 8, &scalar, {}));
    sd.add_value("step", int64_t{42});
    sd.add_value("lr", 0.001);
    sd.add_value("tag", std::string("run-7"));
    sd.add_value("rng", Bytes{std::string("\x00\x01\xff", 3)});
    return sd;
  }
  SaveOptions options() {
    SaveOptions o;
    o.chunk_bytes = 64 << 10;
    o.threads = 1;  // one writer, so one pack: the corruption tests damage "the" pack
    return o;
  }
  std::vector<std::string> packs() {
    std::vector<std::string> out;
    for (auto& e : fs::directory_iterator(dir / "packs")) out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
  }
};

struct Loaded {
  std::vector<float> w = std::vector<float>(64 * 1024, -1), b = std::vector<float>(1000, -1);
  double scalar = 0;
  StateDict sd;
  Loaded() {
    sd.add_tensor("model.w", TensorView::contiguous("float32", 4, w.data(), {64, 1024}));
    sd.add_tensor("model.b", TensorView::contiguous("float32", 4, b.data(), {1000}));
    sd.add_tensor("scalar", TensorView::contiguous("float64", 8, &scalar, {}));
    sd.add_value("step", int64_t{0});
    sd.add_value("lr", 0.0);
    sd.add_value("tag", std::string());
    sd.add_value("rng", Bytes{});
  }
};

}  // namespace

TEST_CASE("round trip of tensors, 0-D tensors and every value kind") {
  Fixture f;
  Store store = Store::open(f.dir.path());
  SaveResult r = save(f.state(), store, "step-1", f.options());
  CHECK(r.chunks == 64 * 1024 * 4 / (64 << 10) + 1 + 1);
  CHECK(r.packs == 1);
  Loaded l;
  LoadResult lr = load(l.sd, Store::open_read_only(f.dir.path()), "step-1");
  CHECK(l.w == f.w);
  CHECK(l.b == f.b);
  CHECK(l.scalar == 3.25);
  CHECK(std::get<int64_t>(l.sd.value("step")) == 42);
  CHECK(std::get<double>(l.sd.value("lr")) == 0.001);
  CHECK(std::get<std::string>(l.sd.value("tag")) == "run-7");
  CHECK(std::get<Bytes>(l.sd.value("rng")).data == std::string("\x00\x01\xff", 3));
  CHECK(lr.missing_keys.empty());
  CHECK(lr.unexpected_keys.empty());
  auto s = store.checkpoint("step-1");
  CHECK(s.tensors == 3);
  CHECK(s.values == 4);
  CHECK(s.logical_bytes == 64 * 1024 * 4 + 4000 + 8);
}

TEST_CASE("staged entries load in bounded waves: each wave finishes before the next is staged") {
  TempDir dir("store");
  Store store = Store::open(dir.path());
  const int n = 6;
  std::vector<std::vector<float>> src(n);
  StateDict sd;
  for (int i = 0; i < n; ++i) {
    src[i].resize(1000 + i * 100);
    for (size_t k = 0; k < src[i].size(); ++k) src[i][k] = static_cast<float>(i * 100000 + k);
    sd.add_tensor("t" + std::to_string(i),
                  TensorView::contiguous("float32", 4, src[i].data(), {static_cast<int64_t>(src[i].size())}));
  }
  save(sd, store, "c");

  // Targets that, like device tensors, are reached only through staging.
  std::vector<std::string> events;
  std::vector<std::vector<float>> staging(n), device(n);
  uint64_t live = 0, peak = 0;
  StateDict target;
  for (int i = 0; i < n; ++i) {
    const TensorView view = TensorView::contiguous("float32", 4, nullptr, {static_cast<int64_t>(src[i].size())});
    auto source = std::make_shared<TestSource>();
    source->on_load = [&, i](const std::string& saved_dtype) {
      CHECK(saved_dtype == "float32");
      events.push_back("stage " + std::to_string(i));
      staging[i].assign(src[i].size(), -1.0f);
      live += staging[i].size() * 4;
      peak = std::max(peak, live);
      return TensorView::contiguous("float32", 4, staging[i].data(), {static_cast<int64_t>(src[i].size())});
    };
    source->on_loaded = [&, i](bool cast) {
      CHECK_FALSE(cast);
      events.push_back("finish " + std::to_string(i));
      device[i] = staging[i];
      live -= staging[i].size() * 4;
      staging[i].clear();
    };
    target.add_tensor("t" + std::to_string(i), sourced_entry(view, source));
  }
  LoadOptions o;
  o.max_staging_bytes = 10000;  // two or three entries per wave (4000..6000 bytes each)
  load(target, Store::open_read_only(dir.path()), "c", o);
  for (int i = 0; i < n; ++i) CHECK(device[i] == src[i]);
  CHECK(peak <= 10000);
  CHECK(peak >= 8000);  // waves hold more than one entry
  // Every entry finishes; a later wave is staged only after the first finished.
  REQUIRE(events.size() == 2 * n);
  CHECK(events.front() == "stage 0");
  CHECK(events.back() == "finish 5");
  CHECK(std::find(events.begin(), events.end(), "finish 0") < std::find(events.begin(), events.end(), "stage 3"));
}

TEST_CASE("auto compression stores raw on a memory filesystem; explicit codecs and disks still compress") {
  auto smooth = tessera::test::smooth_bytes(1 << 20, 5);  // compressible bf16-like bytes
  auto state = [&] {
    StateDict sd;
    sd.add_tensor("w", TensorView::contiguous("bfloat16", 2, smooth.data(), {512, 1024}));
    return sd;
  };
  auto save_into = [&](const std::string& dir, Compression c) {
    Store store = Store::open(dir);
    SaveOptions o;
    o.compression = c;
    return save(state(), store, "c", o);
  };
  TempDir disk("store");
  if (!posix_env()->on_memory_filesystem(disk.path())) {
    SaveResult r = save_into(disk / "auto", Compression::kAuto);
    CHECK(r.written_bytes < r.logical_bytes);
  }
  if (!posix_env()->on_memory_filesystem("/dev/shm")) {
    MESSAGE("no tmpfs at /dev/shm: the memory-filesystem half is skipped");
    return;
  }
  char tmpl[] = "/dev/shm/tessera-store-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string shm = tmpl;
  SaveResult raw = save_into(shm + "/auto", Compression::kAuto);
  SaveResult packed = save_into(shm + "/huffman", Compression::kShuffleHuffman);
  std::filesystem::remove_all(shm);
  CHECK(raw.written_bytes == raw.logical_bytes);
  CHECK(packed.written_bytes < packed.logical_bytes);
}

TEST_CASE("empty tensors and non-contiguous (transposed) sources") {
  TempDir dir("store");
  Store store = Store::open(dir.path());
  // A 3x5 int16 matrix viewed transposed: sizes [5, 3], strides [1, 5].
  std::vector<int16_t> m(15);
  for (int i = 0; i < 15; ++i) m[i] = static_cast<int16_t>(i * 7 - 20);
  TensorView t{"int16", 2, reinterpret_cast<std::byte*>(m.data()), {5, 3}, {1, 5}, {5, 3}, {0, 0}};
  // An expanded (stride 0) row.
  int32_t one = 77;
  TensorView expanded{"int32", 4, reinterpret_cast<std::byte*>(&one), {4}, {0}, {4}, {0}};
  StateDict sd;
  sd.add_tensor("transposed", t);
  sd.add_tensor("expanded", expanded);
  sd.add_tensor("empty", TensorView::contiguous("float32", 4, nullptr, {0, 7}));
  save(sd, store, "c");
  std::vector<int16_t> out(15);
  std::vector<int32_t> ex(4);
  StateDict ld;
  ld.add_tensor("transposed", TensorView::contiguous("int16", 2, out.data(), {5, 3}));
  ld.add_tensor("expanded", TensorView::contiguous("int32", 4, ex.data(), {4}));
  ld.add_tensor("empty", TensorView::contiguous("float32", 4, nullptr, {0, 7}));
  load(ld, store, "c");
  for (int r = 0; r < 5; ++r)
    for (int c = 0; c < 3; ++c) CHECK(out[r * 3 + c] == m[c * 5 + r]);
  CHECK(ex == std::vector<int32_t>(4, 77));
}

TEST_CASE("keys: strict loads refuse missing keys, subsets load with strict=false, extras are reported") {
  Fixture f;
  Store store = Store::open(f.dir.path());
  save(f.state(), store, "c", f.options());
  Loaded l;
  std::vector<float> extra(3);
  l.sd.add_tensor("model.extra", TensorView::contiguous("float32", 4, extra.data(), {3}));
  std::string m = error_of([&] { load(l.sd, store, "c"); });
  CHECK(has(m, "'model.extra'"));
  CHECK(has(m, "strict=false"));
  CHECK(l.b[0] == -1);  // nothing was loaded
  LoadOptions lax;
  lax.strict = false;
  LoadResult r = load(l.sd, store, "c", lax);
  CHECK(r.missing_keys == std::vector<std::string>{"model.extra"});
  CHECK(l.b == f.b);

  StateDict subset;
  std::vector<float> b(1000);
  subset.add_tensor("model.b", TensorView::contiguous("float32", 4, b.data(), {1000}));
  r = load(subset, store, "c");
  CHECK(b == f.b);
  CHECK(r.unexpected_keys.size() == 6);
  CHECK(r.bytes_read == 4000);
}

TEST_CASE("shape and dtype mismatches name the tensor and both values") {
  Fixture f;
  Store store = Store::open(f.dir.path());
  save(f.state(), store, "c", f.options());
  std::vector<float> b(1000);
  StateDict wrong_shape;
  wrong_shape.add_tensor("model.b", TensorView::contiguous("float32", 4, b.data(), {999}));
  std::string m = error_of([&] { load(wrong_shape, store, "c"); });
  CHECK(has(m, "tensor 'model.b'"));
  CHECK(has(m, "saved shape [1000], target [999]"));
  StateDict wrong_dtype;
  wrong_dtype.add_tensor("model.b", TensorView::contiguous("int32", 4, b.data(), {1000}));
  m = error_of([&] { load(wrong_dtype, store, "c"); });
  CHECK(has(m, "saved dtype float32, target int32"));
  LoadOptions cast;
  cast.allow_cast = true;
  m = error_of([&] { load(wrong_dtype, store, "c", cast); });
  CHECK(has(m, "LibTorch layer"));
  StateDict wrong_kind;
  wrong_kind.add_value("step", std::string("x"));
  CHECK(has(error_of([&] { load(wrong_kind, store, "c"); }), "value 'step': saved int, target string"));
  CHECK(has(error_of([&] { load(wrong_kind, store, "nope"); }), "checkpoint 'nope' not found"));
}

TEST_CASE("malformed shards are refused before anything is written") {
  TempDir dir("store");
  Store store = Store::open(dir.path());
  std::vector<float> x(8);
  StateDict sd;
  sd.add_tensor("w", TensorView::contiguous("float32", 4, x.data(), {4, 2}).as_shard({6, 2}, {3, 0}));
  std::string m = error_of([&] { save(sd, store, "c"); });
  CHECK(has(m, "tensor 'w'"));
  CHECK(has(m, "does not fit the global shape [6, 2]"));
  CHECK(store.checkpoints().empty());
  CHECK(fs::is_empty(dir / "packs"));
}

TEST_CASE("ranks that disagree, overlap or leave gaps are refused naming tensor and ranks") {
  TempDir dir("store");
  Store store = Store::open(dir.path());
  std::vector<float> x(8, 1.0f), y(8, 2.0f);
  auto manifest = [&](int64_t rank, TensorView v) {
    StateDict sd;
    sd.add_tensor("layer.w", v);
    return write_part(sd, store, SaveOptions{}, rank).manifest;
  };
  auto top = TensorView::contiguous("float32", 4, x.data(), {2, 4}).as_shard({4, 4}, {0, 0});
  auto bottom = TensorView::contiguous("float32", 4, y.data(), {2, 4}).as_shard({4, 4}, {2, 0});
  auto overlapping = TensorView::contiguous("float32", 4, y.data(), {2, 4}).as_shard({4, 4}, {1, 0});
  auto other_dtype = TensorView::contiguous("int32", 4, y.data(), {2, 4}).as_shard({4, 4}, {2, 0});
  auto commit = [&](std::vector<std::string> ms) {
    return error_of([&] { commit_parts(store, "c", ms, static_cast<int64_t>(ms.size())); });
  };
  std::string m = commit({manifest(0, top), manifest(1, overlapping)});
  CHECK(has(m, "tensor 'layer.w' (saved by ranks 0, 1)"));
  CHECK(has(m, "overlap"));
  m = commit({manifest(0, top)});
  CHECK(has(m, "8 of 16 elements are not covered"));
  m = commit({manifest(0, top), manifest(3, other_dtype)});
  CHECK(has(m, "rank 0 saved dtype float32"));
  CHECK(has(m, "rank 3 saved dtype int32"));
  // Replicas of one box must agree.
  auto replica = TensorView::contiguous("float32", 4, y.data(), {2, 4}).as_shard({4, 4}, {0, 0});
  m = commit({manifest(0, top), manifest(1, bottom), manifest(2, replica)});
  CHECK(has(m, "hold different data"));
  CHECK(store.checkpoints().empty());
  CHECK(commit({manifest(0, top), manifest(1, bottom), manifest(2, top)}).empty());
  CHECK(store.checkpoints().size() == 1);
}

TEST_CASE("an existing checkpoint name is refused and the earlier checkpoint is untouched") {
  Fixture f;
  Store store = Store::open(f.dir.path());
  save(f.state(), store, "c", f.options());
  f.w[0] += 1;
  try {
    save(f.state(), store, "c", f.options());
    FAIL("saved twice under one name");
  } catch (const AlreadyExistsError& e) {
    CHECK(has(e.what(), "checkpoint 'c' already exists"));
  }
  f.w[0] -= 1;
  Loaded l;
  load(l.sd, store, "c");
  CHECK(l.w == f.w);
}

TEST_CASE("overwrite replaces a checkpoint in the commit; a failing overwrite leaves the old one") {
  Fixture f;
  Store store = Store::open(f.dir.path());
  save(f.state(), store, "c", f.options());
  save(f.state(), store, "other", f.options());
  const std::vector<float> old_w = f.w;
  SaveOptions o = f.options();
  o.overwrite = true;

  // A failing overwrite (full disk while writing): "c" is still the old state.
  f.w[0] = 42;
  CHECK(has(error_of([&] {
              Store full = open_with_full_disk(f.dir.path(), 1);
              save(f.state(), full, "c", o);
            }),
            "No space left on device"));
  Loaded l;
  load(l.sd, store, "c");
  CHECK(l.w == old_w);

  // A failing commit (inconsistent parts) leaves it too.
  {
    StateDict bad = f.state();
    auto& e = std::get<TensorEntry>(bad.entries().at("model.w"));
    e.view.global_shape[0] += 1;  // this rank's rows no longer tile the tensor
    CHECK(has(error_of([&] { save(bad, store, "c", o); }), "do not tile"));
    load(l.sd, store, "c");
    CHECK(l.w == old_w);
  }

  // The overwrite: same name, new contents, committed after the others; nothing else changes.
  SaveResult r = save(f.state(), store, "c", o);
  CHECK(r.chunks_written >= 1);
  load(l.sd, store, "c");
  CHECK(l.w == f.w);
  auto names = store.checkpoints();
  REQUIRE(names.size() == 2);
  CHECK(names[0].name == "other");
  CHECK(names[1].name == "c");
  load(l.sd, store, "other");
  CHECK(l.w == old_w);
  CHECK(verify(store).ok());
}

TEST_CASE("dedup: saving the same state twice writes no chunk data the second time") {
  Fixture f;
  Store store = Store::open(f.dir.path());
  SaveResult first = save(f.state(), store, "a", f.options());
  CHECK(first.chunks_written == first.chunks);
  SaveResult second = save(f.state(), store, "b", f.options());
  CHECK(second.chunks_written == 0);
  CHECK(second.written_bytes == 0);
  CHECK(second.packs == 0);
  f.w[5] = 123.0f;  // one chunk changes
  SaveResult third = save(f.state(), store, "c", f.options());
  CHECK(third.chunks_written == 1);
  Loaded l;
  load(l.sd, store, "b");
  CHECK(l.b == f.b);
  load(l.sd, store, "c");
  CHECK(l.w == f.w);
}

TEST_CASE("corruption is an error naming checkpoint, tensor, chunk and pack - never wrong data") {
  Fixture f;
  Store store = Store::open(f.dir.path());
  save(f.state(), store, "c", f.options());
  REQUIRE(f.packs().size() == 1);
  const std::string pack = f.packs()[0];
  const std::string pack_name = fs::path(pack).filename().string();
  auto load_error = [&](bool verify = true) {
    Loaded l;
    LoadOptions o;
    o.verify = verify;
    return error_of([&] { load(l.sd, Store::open_read_only(f.dir.path()), "c", o); });
  };
  SUBCASE("flipped byte in a raw chunk") {
    flip_byte(pack, 1000);
    std::string m = load_error();
    CHECK(has(m, "checkpoint 'c'"));
    CHECK(has(m, "tensor 'model."));
    CHECK(has(m, "in pack '" + pack_name + "'"));
    CHECK(has(m, "checksum mismatch"));
    CHECK(load_error(false).empty());  // opting out of verification reads the damaged bytes
    VerifyReport v = verify(store);
    REQUIRE(v.damaged.size() == 1);
    CHECK(v.damaged[0].pack == pack_name);
    CHECK(v.damaged[0].users.size() == 1);
  }
  SUBCASE("truncated pack") {
    fs::resize_file(pack, fs::file_size(pack) / 2);
    std::string m = load_error();
    CHECK(has(m, "checkpoint 'c'"));
    CHECK(has(m, pack_name));
    CHECK(!verify(store).ok());
  }
  SUBCASE("missing pack") {
    fs::remove(pack);
    std::string m = load_error();
    CHECK(has(m, pack_name));
    CHECK(has(m, "No such file"));
    CHECK(verify(store).damaged.size() == 6);  // every chunk lived in the one pack
  }
  SUBCASE("foreign file in place of the pack") {
    std::ofstream(pack, std::ios::trunc) << std::string(300000, 'x');
    CHECK(has(load_error(), "checksum mismatch"));
    auto v = verify(store);
    REQUIRE(!v.ok());
    CHECK(has(v.damaged[0].problem, "not a tessera pack"));
  }
}

TEST_CASE("compressed chunks: damage is caught before decoding") {
  TempDir dir("store");
  Store store = Store::open(dir.path());
  auto smooth = test::smooth_bytes(1 << 20, 3);
  StateDict sd;
  sd.add_tensor("emb", TensorView::contiguous("bfloat16", 2, smooth.data(), {512, 1024}));
  SaveResult r = save(sd, store, "c");
  CHECK(r.written_bytes < smooth.size());
  std::vector<std::byte> out(smooth.size());
  StateDict ld;
  ld.add_tensor("emb", TensorView::contiguous("bfloat16", 2, out.data(), {512, 1024}));
  load(ld, store, "c");
  CHECK(out == smooth);
  std::string pack = fs::directory_iterator(dir / "packs")->path().string();
  {
    std::fstream io(pack, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(200);
    io.put('\x01');
  }
  std::string m = error_of([&] { load(ld, store, "c"); });
  CHECK(has(m, "tensor 'emb'"));
  CHECK(has(m, "checksum mismatch in the stored bytes"));
}

TEST_CASE("a full disk fails the save naming the file; nothing is committed or left behind") {
  Fixture f;
  Store store = Store::open(f.dir.path());
  save(f.state(), store, "before", f.options());
  auto packs_before = f.packs();
  f.w[0] = 99;  // so the next save has new chunks to write
  std::string m = error_of([&] {
    Store full = open_with_full_disk(f.dir.path(), 2);
    save(f.state(), full, "after", f.options());
  });
  CHECK(has(m, "No space left on device"));
  CHECK(has(m, f.dir.path()));
  CHECK(store.checkpoints().size() == 1);
  CHECK(f.packs() == packs_before);
  CHECK(fs::is_empty(f.dir / "tmp"));
  CHECK(verify(store).ok());
}

TEST_CASE("a store from a newer tessera, or a directory that is not a store, is refused") {
  TempDir dir("store");
  CHECK(has(error_of([&] { Store::open_read_only(dir.path()); }), "is not a tessera store"));
  { Store::open(dir.path()); }
  {
    catalog::Db db(dir / "catalog.db", 0x2);
    db.exec("PRAGMA user_version = 7");
  }
  try {
    Store::open(dir.path());
    FAIL("opened a newer catalog");
  } catch (const StoreError& e) {
    CHECK(has(e.what(), "newer than this tessera supports"));
  }
}

TEST_CASE("crash safety: a save killed at random points leaves every committed checkpoint intact") {
  TempDir dir("crash");
  std::vector<std::vector<float>> data(6, std::vector<float>(256 * 1024));
  auto fill = [&](int version) {
    std::mt19937 rng(static_cast<unsigned>(version));
    for (auto& t : data)
      for (auto& x : t) x = static_cast<float>(rng());
  };
  auto state = [&] {
    StateDict sd;
    for (size_t i = 0; i < data.size(); ++i)
      sd.add_tensor("t" + std::to_string(i), TensorView::contiguous("float32", 4, data[i].data(), {256, 1024}));
    return sd;
  };
  SaveOptions o;
  o.chunk_bytes = 256 << 10;
  o.pack_bytes = 1 << 20;  // several packs per save, so kills land between renames too
  std::mt19937 rng(77);
  // The store exists before the first kill: on a loaded host every kill could
  // land before a child had created it, and there would be nothing to check.
  { Store::open(dir.path()); }
  for (int round = 0; round < 12; ++round) {
    pid_t pid = fork();
    if (pid == 0) {
      try {
        fill(round);
        Store store = Store::open(dir.path());
        save(state(), store, "round-" + std::to_string(round), o);
      } catch (...) {
        _exit(3);
      }
      _exit(0);
    }
    usleep(static_cast<useconds_t>(rng() % 60000));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
  }
  Store store = Store::open_read_only(dir.path());
  for (const auto& c : store.checkpoints()) {
    int round = std::stoi(c.name.substr(6));
    fill(round);
    std::vector<std::vector<float>> expected = data;
    for (auto& t : data) std::fill(t.begin(), t.end(), 0.0f);
    StateDict sd = state();
    load(sd, store, c.name);
    CHECK(data == expected);
  }
  CHECK(verify(store).ok());
  MESSAGE(store.checkpoints().size() << " of 12 killed saves had committed");
}

TEST_CASE("a staging target that covers another box than its entry is refused, naming the tensor") {
  TempDir dir("store");
  Store store = Store::open(dir.path());
  std::vector<float> w(8, 2.0f), half(4, -1.0f);
  StateDict sd;
  sd.add_tensor("w", TensorView::contiguous("float32", 4, w.data(), {8}));
  save(sd, store, "c");
  StateDict target;
  // Rows 0..3 only: pieces were read for the entry's box, so this target
  // would be filled from the wrong pieces (or not at all).
  auto source = std::make_shared<TestSource>(TensorView::contiguous("float32", 4, half.data(), {4}).as_shard({8}, {0}));
  target.add_tensor("w", sourced_entry(TensorView::contiguous("float32", 4, nullptr, {8}), source));
  const std::string m = error_of([&] { load(target, store, "c"); });
  CHECK(has(m, "tensor 'w'"));
  CHECK(has(m, "staging target"));
  CHECK(half == std::vector<float>(4, -1.0f));
}

TEST_CASE("a save asks a staged source for its bytes once and calls saved() once, after its last chunk") {
  TempDir dir("store");
  Store store = Store::open(dir.path());
  std::vector<float> w(4096);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i) * 0.5f;
  std::vector<float> staging = w;
  auto source = std::make_shared<TestSource>(TensorView::contiguous("float32", 4, staging.data(), {4096}));
  // Staging reused after saved(): a chunk read later would be saved as -7.
  source->on_saved = [&] { std::fill(staging.begin(), staging.end(), -7.0f); };
  StateDict sd;
  sd.add_tensor("w", sourced_entry(TensorView::contiguous("float32", 4, nullptr, {4096}), source));
  SaveOptions o;
  o.chunk_bytes = 1024;  // 16 chunks over 4 workers
  o.threads = 4;
  CHECK(save(sd, store, "c", o).chunks_written == 16);
  CHECK(source->calls() == std::vector<std::string>{"host_view_for_save", "saved"});

  // Again, every chunk now found in the store: once each per save.
  staging = w;
  CHECK(save(sd, store, "d", o).chunks_written == 0);
  CHECK(source->calls() == std::vector<std::string>{"host_view_for_save", "saved", "host_view_for_save", "saved"});

  std::vector<float> back(4096, 0.0f);
  StateDict target;
  target.add_tensor("w", TensorView::contiguous("float32", 4, back.data(), {4096}));
  load(target, store, "c");
  CHECK(back == w);
}

TEST_CASE("a source over host memory is read and written in place, and still told saved() and loaded()") {
  TempDir dir("store");
  Store store = Store::open(dir.path());
  std::vector<float> w{1, 2, 3, 4, 5, 6, 7, 8}, back(8, 0.0f);
  auto saving = std::make_shared<TestSource>();
  saving->is_staged = false;
  StateDict sd;
  sd.add_tensor("w", sourced_entry(TensorView::contiguous("float32", 4, w.data(), {8}), saving));
  save(sd, store, "c");
  CHECK(saving->calls() == std::vector<std::string>{"saved"});

  auto loading = std::make_shared<TestSource>();
  loading->is_staged = false;
  loading->casts = true;  // unused: the dtypes agree
  StateDict target;
  target.add_tensor("w", sourced_entry(TensorView::contiguous("float32", 4, back.data(), {8}), loading));
  load(target, store, "c");
  CHECK(loading->calls() == std::vector<std::string>{"loaded"});
  CHECK(back == w);
}

TEST_CASE("a load asks a source for one target in the saved dtype, then tells loaded() whether it must convert") {
  TempDir dir("store");
  Store store = Store::open(dir.path());
  std::vector<float> w{1.5f, -2.0f, 3.25f, 4.0f, 0.0f, 6.5f};
  StateDict sd;
  sd.add_tensor("w", TensorView::contiguous("float32", 4, w.data(), {6}));
  save(sd, store, "c");

  SUBCASE("staged, same dtype") {
    std::vector<float> staging(6, 0.0f);
    auto source = std::make_shared<TestSource>(TensorView::contiguous("float32", 4, staging.data(), {6}));
    StateDict target;
    target.add_tensor("w", sourced_entry(TensorView::contiguous("float32", 4, nullptr, {6}), source));
    load(target, store, "c");
    CHECK(source->calls() == std::vector<std::string>{"host_target_for_load float32", "loaded"});
    CHECK(staging == w);
  }
  SUBCASE("a float64 target: the bytes land as float32, and loaded(true) converts") {
    std::vector<float> landed(6, 0.0f);
    std::vector<double> target_bytes(6, 0.0);
    auto source = std::make_shared<TestSource>(TensorView::contiguous("float32", 4, landed.data(), {6}));
    source->is_staged = false;
    source->casts = true;
    source->on_loaded = [&](bool cast) {
      REQUIRE(cast);
      std::copy(landed.begin(), landed.end(), target_bytes.begin());
    };
    StateDict target;
    target.add_tensor("w", sourced_entry(TensorView::contiguous("float64", 8, target_bytes.data(), {6}), source));
    LoadOptions o;
    o.allow_cast = true;
    load(target, store, "c", o);
    CHECK(source->calls() == std::vector<std::string>{"host_target_for_load float32", "loaded cast"});
    CHECK(target_bytes == std::vector<double>(w.begin(), w.end()));
  }
  SUBCASE("a source that cannot cast is refused before it is asked for anything") {
    std::vector<double> target_bytes(6, 0.0);
    auto source = std::make_shared<TestSource>();
    source->is_staged = false;
    StateDict target;
    target.add_tensor("w", sourced_entry(TensorView::contiguous("float64", 8, target_bytes.data(), {6}), source));
    LoadOptions o;
    o.allow_cast = true;
    CHECK(has(error_of([&] { load(target, store, "c", o); }), "converting needs the LibTorch layer"));
    CHECK(source->calls().empty());
  }
  SUBCASE("an entry the checkpoint lacks (non-strict load): not called") {
    auto source = std::make_shared<TestSource>();
    StateDict target;
    target.add_tensor("absent", sourced_entry(TensorView::contiguous("float32", 4, nullptr, {6}), source));
    LoadOptions o;
    o.strict = false;
    CHECK(load(target, store, "c", o).missing_keys == std::vector<std::string>{"absent"});
    CHECK(source->calls().empty());
  }
}

TEST_CASE("save and load report progress: bytes rise to the total, then one finished report") {
  Fixture f;
  Store store = Store::open(f.dir.path());
  struct Seen {
    std::vector<Progress> reports;
    std::mutex mu;
    ProgressFn fn() {
      return [this](const Progress& p) {
        std::lock_guard lock(mu);
        reports.push_back(p);
      };
    }
    void check(std::string_view operation, uint64_t total) {
      REQUIRE(reports.size() >= 2);  // the first bytes at once, then the closing report
      for (size_t i = 0; i < reports.size(); ++i) {
        CHECK(reports[i].operation == operation);
        CHECK(reports[i].total_bytes == total);
        CHECK(reports[i].finished == (i + 1 == reports.size()));
        if (i) CHECK(reports[i].done_bytes >= reports[i - 1].done_bytes);
      }
      CHECK(reports.back().done_bytes == total);
    }
  };
  const uint64_t logical = 64 * 1024 * 4 + 4000 + 8;
  Seen saved;
  SaveOptions so = f.options();
  so.progress = saved.fn();
  save(f.state(), store, "p", so);
  saved.check("save", logical);

  Seen loaded;
  Loaded l;
  LoadOptions lo;
  lo.progress = loaded.fn();
  load(l.sd, Store::open_read_only(f.dir.path()), "p", lo);
  loaded.check("load", logical);
  CHECK(l.w == f.w);

  Seen verified;
  VerifyOptions vo;
  vo.threads = 1;
  vo.progress = verified.fn();
  verify(store, {"p"}, vo);
  REQUIRE(!verified.reports.empty());
  CHECK(verified.reports.back().finished);
  CHECK(verified.reports.back().done_bytes == verified.reports.back().total_bytes);
}

namespace {

// The class and message of what `fn` throws: "InvalidArgument: ...", or
// "(nothing)". Exact classes only (a subclass reads as itself).
std::string thrown_by(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const InvalidArgument& e) {
    return std::string("InvalidArgument: ") + e.what();
  } catch (const std::exception& e) {
    return std::string("other (") + typeid(e).name() + "): " + e.what();
  }
  return "(nothing)";
}

}  // namespace

TEST_CASE("thread counts beyond the maximum are refused naming `threads` before any thread starts, in every API") {
  Fixture f;
  Store store = Store::open(f.dir.path());
  save(f.state(), store, "c", f.options());
  const size_t before = live_threads();
  const std::string refused = "InvalidArgument: threads must be between 0 (one per core) and 1024, got 1000000";

  SaveOptions so = f.options();
  so.threads = 1'000'000;
  CHECK(thrown_by([&] { save(f.state(), store, "huge", so); }) == refused);
  CHECK(thrown_by([&] { write_part(f.state(), store, so); }) == refused);
  StateDict target = f.state();
  LoadOptions lo;
  lo.threads = 1'000'000;
  CHECK(thrown_by([&] { load(target, store, "c", lo); }) == refused);
  VerifyOptions vo;
  vo.threads = 1'000'000;
  CHECK(thrown_by([&] { verify(store, {}, vo); }) == refused);
  CHECK(live_threads() == before);  // none started, none left behind
  CHECK(store.checkpoints().size() == 1);
  CHECK(f.packs().size() == 1);  // the refused saves wrote nothing
  // The pool itself (the cap, the maximum, 0 for one per core): io_test.cc.
}

TEST_CASE("a negative keep_last is refused naming it, before anything is written") {
  Fixture f;
  Store store = Store::open(f.dir.path());
  save(f.state(), store, "c", f.options());
  SaveOptions o = f.options();
  o.keep_last = -1;
  const std::string refused = "InvalidArgument: save: keep_last must be 0 (keep all) or positive, got -1";
  CHECK(thrown_by([&] { save(f.state(), store, "d", o); }) == refused);
  CHECK(thrown_by([&] { write_part(f.state(), store, o); }) == refused);
  // Parts written with other options: refused at the commit, which commits nothing.
  SavedPart part = write_part(f.state(), store, f.options());
  CHECK(thrown_by([&] { commit_parts(store, "d", {part.manifest}, 1, o); }) == refused);
  discard_part(store, part.manifest);
  CHECK(store.checkpoints().size() == 1);
  CHECK(f.packs().size() == 1);
}

TEST_CASE("commit_parts records the world size it is given and refuses one below 1, committing nothing") {
  Fixture f;
  Store store = Store::open(f.dir.path());
  SavedPart part = write_part(f.state(), store, f.options());
  for (int64_t bad : {0, -3})
    CHECK(thrown_by([&] { commit_parts(store, "d", {part.manifest}, bad, f.options()); }) ==
          "InvalidArgument: commit of 'd': world_size must be 1 or more, got " + std::to_string(bad));
  CHECK(store.checkpoints().empty());
  commit_parts(store, "d", {part.manifest}, 3, f.options());
  CHECK(store.checkpoint("d").world_size == 3);
  save(f.state(), store, "single", f.options());
  CHECK(store.checkpoint("single").world_size == 1);
}

TEST_CASE("a chunk row naming a pack row that is gone fails the load naming the chunk and the row") {
  Fixture f;
  Store store = Store::open(f.dir.path());
  save(f.state(), store, "c", f.options());
  StoreAccess::impl(store).catalog.db().exec("DELETE FROM packs");  // no declared foreign key since schema 5
  Loaded l;
  try {
    load(l.sd, store, "c");
    FAIL("a load found chunks in a pack the catalog no longer names");
  } catch (const CorruptionError& e) {
    const std::string m = e.what();
    CHECK(has(m, "catalog damaged: chunk "));
    CHECK(has(m, "names pack row "));
    CHECK(has(m, "which is missing"));
  }
  CHECK(l.w == std::vector<float>(64 * 1024, -1));  // nothing was read
}

TEST_CASE("loading into an expanded view (stride 0) is refused naming the tensor") {
  TempDir dir("store");
  Store store = Store::open(dir.path());
  std::vector<float> values{1, 2, 3, 4, 5, 6};
  StateDict sd;
  sd.add_tensor("w", TensorView::contiguous("float32", 4, values.data(), {6}));
  save(sd, store, "c");

  float one = -1.0f;  // six elements, one memory location (torch: zeros(1).expand(6))
  TensorView expanded = TensorView::contiguous("float32", 4, &one, {6});
  expanded.strides = {0};
  StateDict target;
  target.add_tensor("w", expanded);
  const std::string m = thrown_by([&] { load(target, store, "c"); });
  CHECK(has(m, "InvalidArgument: tensor 'w': an expanded view (stride 0 in dimension 0 of size 6)"));
  CHECK(one == -1.0f);  // nothing was read into it

  // Stride 0 in a dimension of one element is an ordinary view.
  std::vector<float> row(6, -1.0f);
  TensorView single = TensorView::contiguous("float32", 4, row.data(), {1, 6}).as_shard({1, 6}, {0, 0});
  single.strides = {0, 1};
  StateDict rows;
  sd = StateDict{};
  sd.add_tensor("r", TensorView::contiguous("float32", 4, values.data(), {1, 6}));
  save(sd, store, "r");
  rows.add_tensor("r", single);
  load(rows, store, "r");
  CHECK(row == values);
  // (Saving from an expanded view works: "empty tensors and non-contiguous (transposed) sources".)
}
