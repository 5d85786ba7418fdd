// Writes tests/data/store-v4: a store as tessera 0.3.0 (catalog schema 4,
// with the layout_chunks table and the chunks_by_pack index) left it.
//
// The fixture the migration test (tests/history_test.cc, "a schema-4 store
// migrates") opens. It was generated once, with the core library of commit
// 4ab91a0 (schema 4):
//
//   git archive 4ab91a0 | tar -x -C /tmp/v4 && cd /tmp/v4 &&
//   meson setup build -Dtorch=disabled -Dpython=disabled -Dtests=disabled &&
//   meson compile -C build lib/tessera_core
//   g++ -std=c++20 -O1 -I/tmp/v4/lib/include tests/data/make_store_v4.cc \
//     /tmp/v4/build/lib/libtessera_core.a -l:libsqlite3.so.0 -l:liblz4.so.1 -lpthread -o make_store_v4
//   ./make_store_v4 tests/data/store-v4
//
// Contents (the test's expected() says every tensor's values):
//   a  w1 float32 [64,48] = i, w2 int64 [30] = i, z1 float32 [1024] and
//      z2 float32 [2048] zeros (one 4 KiB chunk: z1's layout holds it once,
//      z2's twice), step = 0. Raw chunks of 4 KiB.
//   b  w1 = i + 1, w2 and z2 as in a, no z1, step = 1.
//   c  a distributed save by 2 ranks (threads): s float32 [16,64] = i / 2 + 100,
//      rows 0-7 by rank 0 and 8-15 by rank 1 (one pack each), w2 replicated
//      on both, step = 2.
//   d  saved with w1 = i + 4, then overwritten with w1 = i + 5 and ones
//      float32 [2048] = 1 (compressed), step = 5: the first w1's chunks are
//      orphans.
//   e  saved with w1 = i + 9 and z1, then removed (rm): w1's chunks are
//      orphans, z1's chunk stays live (z2 in a and b holds it).
// Packs: one per save per writing rank; tmp/ is removed.
#include <filesystem>
#include <thread>
#include <vector>

#include "tessera/checkpoint.h"
#include "tessera/distributed.h"
#include "tessera/history.h"
#include "tessera/store.h"

using namespace tessera;

namespace {

std::vector<float> w1(float add) {
  std::vector<float> v(64 * 48);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) + add;
  return v;
}

SaveOptions opts(Compression c = Compression::kNone) {
  SaveOptions o;
  o.chunk_bytes = 4096;
  o.compression = c;
  o.threads = 1;
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::string out = argv[1];
  std::filesystem::remove_all(out);
  std::vector<int64_t> w2(30);
  for (size_t i = 0; i < w2.size(); ++i) w2[i] = static_cast<int64_t>(i);
  std::vector<float> z1(1024, 0.0f), z2(2048, 0.0f), ones(2048, 1.0f);
  {
    Store store = Store::open(out);
    std::vector<float> a = w1(0), b = w1(1);
    StateDict sa;
    sa.add_tensor("w1", TensorView::contiguous("float32", 4, a.data(), {64, 48}));
    sa.add_tensor("w2", TensorView::contiguous("int64", 8, w2.data(), {30}));
    sa.add_tensor("z1", TensorView::contiguous("float32", 4, z1.data(), {1024}));
    sa.add_tensor("z2", TensorView::contiguous("float32", 4, z2.data(), {2048}));
    sa.add_value("step", int64_t{0});
    save(sa, store, "a", opts());
    StateDict sb;
    sb.add_tensor("w1", TensorView::contiguous("float32", 4, b.data(), {64, 48}));
    sb.add_tensor("w2", TensorView::contiguous("int64", 8, w2.data(), {30}));
    sb.add_tensor("z2", TensorView::contiguous("float32", 4, z2.data(), {2048}));
    sb.add_value("step", int64_t{1});
    save(sb, store, "b", opts());
  }
  {
    std::vector<float> s(16 * 64);
    for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<float>(i) / 2 + 100;
    auto planes = in_process_control_planes(2);
    std::vector<std::thread> ranks;
    for (int r = 0; r < 2; ++r)
      ranks.emplace_back([&, r] {
        StateDict sd;
        sd.add_tensor("s", TensorView::contiguous("float32", 4, s.data() + r * 8 * 64, {8, 64}).as_shard({16, 64}, {r * 8, 0}));
        sd.add_tensor("w2", TensorView::contiguous("int64", 8, w2.data(), {30}));
        sd.add_value("step", int64_t{2});
        save(sd, out, "c", *planes[r], opts());
      });
    for (auto& t : ranks) t.join();
  }
  {
    Store store = Store::open(out);
    std::vector<float> d1 = w1(4), d2 = w1(5), e = w1(9);
    StateDict first;
    first.add_tensor("w1", TensorView::contiguous("float32", 4, d1.data(), {64, 48}));
    first.add_value("step", int64_t{4});
    save(first, store, "d", opts());
    StateDict second;
    second.add_tensor("w1", TensorView::contiguous("float32", 4, d2.data(), {64, 48}));
    second.add_tensor("ones", TensorView::contiguous("float32", 4, ones.data(), {2048}));
    second.add_value("step", int64_t{5});
    SaveOptions o = opts(Compression::kAuto);
    o.overwrite = true;
    save(second, store, "d", o);
    StateDict se;
    se.add_tensor("w1", TensorView::contiguous("float32", 4, e.data(), {64, 48}));
    se.add_tensor("z1", TensorView::contiguous("float32", 4, z1.data(), {1024}));
    se.add_value("step", int64_t{9});
    save(se, store, "e", opts());
    remove_checkpoints(store, {"e"});
  }
  std::filesystem::remove_all(out + "/tmp");
  return 0;
}
