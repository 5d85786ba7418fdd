// Catalog damage is never silent: a store of three small checkpoints whose
// catalog gets one flipped bit at a time, at every byte. Each load after a
// flip either returns exactly what was saved or throws a tessera::Error;
// verify reports the damage where a load would see it.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

#include "tessera/checkpoint.h"
#include "tessera/error.h"
#include "tessera/inspect.h"
#include "test_util.h"

using namespace tessera;
using tessera::test::TempDir;
namespace fs = std::filesystem;

namespace {

// What one checkpoint holds: two float32 tensors and two values.
struct Contents {
  std::vector<float> w = std::vector<float>(16 * 64), b = std::vector<float>(64);
  int64_t step = 0;
  std::string tag;

  StateDict state() {
    StateDict sd;
    sd.add_tensor("model.w", TensorView::contiguous("float32", 4, w.data(), {16, 64}));
    sd.add_tensor("model.b", TensorView::contiguous("float32", 4, b.data(), {64}));
    sd.add_value("step", step);
    sd.add_value("tag", tag);
    return sd;
  }
  bool operator==(const Contents& o) const { return w == o.w && b == o.b && step == o.step && tag == o.tag; }
};

// Loads `name` into fresh buffers (filled with a poison value first).
Contents load_contents(const std::string& store, const std::string& name) {
  Contents c;
  std::fill(c.w.begin(), c.w.end(), -7.0f);
  std::fill(c.b.begin(), c.b.end(), -7.0f);
  StateDict sd = c.state();
  load(sd, Store::open_read_only(store), name);
  c.step = std::get<int64_t>(sd.value("step"));
  c.tag = std::get<std::string>(sd.value("tag"));
  return c;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_all(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// Three checkpoints that share chunks and layouts, and hold tensors of the
// same name and shape with other values (so that a damaged reference can
// point at data that looks right but is not): a, then b (w changed), then
// c (w as in a, b changed).
std::map<std::string, Contents> make_store(const std::string& dir) {
  std::map<std::string, Contents> saved;
  Contents a;
  for (size_t i = 0; i < a.w.size(); ++i) a.w[i] = static_cast<float>(i) * 0.5f;
  for (size_t i = 0; i < a.b.size(); ++i) a.b[i] = static_cast<float>(i) - 3.0f;
  a.step = 1;
  a.tag = "first";
  Contents b = a;
  for (auto& x : b.w) x += 1.0f;
  b.step = 2;
  b.tag = "second";
  Contents c = a;
  for (auto& x : c.b) x *= 2.0f;
  c.step = 3;
  c.tag = "third";
  Store store = Store::open(dir);
  SaveOptions o;
  o.chunk_bytes = 1024;  // w in 4 chunks of 4 rows, b in one
  o.threads = 1;
  for (auto& [name, contents] : std::map<std::string, Contents*>{{"a", &a}, {"b", &b}, {"c", &c}}) {
    save(contents->state(), store, name, o);
    saved[name] = *contents;
  }
  return saved;
}

}  // namespace

TEST_CASE("every bit-flipped byte of the catalog: each load returns what was saved or throws tessera::Error") {
  TempDir dir{"damage"};
  const std::map<std::string, Contents> saved = make_store(dir.path());
  for (const auto& [name, contents] : saved) REQUIRE(load_contents(dir.path(), name) == contents);
  const std::string db = dir / "catalog.db";
  REQUIRE((!fs::exists(db + "-wal") || fs::file_size(db + "-wal") == 0));  // the catalog is one file
  const std::string clean = read_all(db);

  size_t flips = 0, refused = 0, right = 0;
  std::vector<std::string> wrong, foreign;  // what went wrong, at which byte
  std::vector<std::string> unreported;      // bytes whose flip a load refused and verify called ok
  for (size_t i = 0; i < clean.size(); ++i) {
    // Long runs of zeros are unused page space: flip their first byte only.
    if (clean[i] == 0 && i > 0 && clean[i - 1] == 0 && i + 1 < clean.size() && clean[i + 1] == 0) continue;
    std::string bad = clean;
    bad[i] = static_cast<char>(bad[i] ^ (1 << (i % 8)));
    write_all(db, bad);
    fs::remove(db + "-wal");
    fs::remove(db + "-shm");
    ++flips;
    bool any_refused = false;
    for (const auto& [name, contents] : saved) {
      try {
        if (load_contents(dir.path(), name) == contents) ++right;
        else wrong.push_back("byte " + std::to_string(i) + ": checkpoint '" + name + "' loaded other data");
      } catch (const Error&) {
        ++refused;
        any_refused = true;
      } catch (const std::exception& e) {
        foreign.push_back("byte " + std::to_string(i) + ": checkpoint '" + name + "': " + e.what());
      }
    }
    if (!any_refused) continue;
    // What a load refuses, verify reports (or it cannot open the store at all).
    try {
      VerifyOptions one_thread;
      one_thread.threads = 1;
      if (verify(Store::open_read_only(dir.path()), {}, one_thread).ok()) unreported.push_back(std::to_string(i));
    } catch (const Error&) {
    } catch (const std::exception& e) {
      foreign.push_back("byte " + std::to_string(i) + ": verify: " + e.what());
    }
  }
  write_all(db, clean);
  fs::remove(db + "-wal");
  fs::remove(db + "-shm");
  MESSAGE(flips << " flips, loads: " << right << " right, " << refused << " refused, " << wrong.size()
                << " wrong, " << foreign.size() << " other errors");
  std::ostringstream first;
  for (size_t k = 0; k < std::min<size_t>(wrong.size(), 20); ++k) first << wrong[k] << "\n";
  for (size_t k = 0; k < std::min<size_t>(foreign.size(), 20); ++k) first << foreign[k] << "\n";
  INFO(first.str());
  std::string unreported_at;
  for (size_t k = 0; k < std::min<size_t>(unreported.size(), 20); ++k) unreported_at += unreported[k] + " ";
  INFO("flips a load refused and verify passed, at bytes: " << unreported_at);
  CHECK(wrong.empty());
  CHECK(foreign.empty());  // every refusal is a tessera::Error (one the Python package maps)
  CHECK(unreported.empty());
  CHECK(refused > 0);      // the flips reached data the loads use
  for (const auto& [name, contents] : saved) CHECK(load_contents(dir.path(), name) == contents);
}
