// The tessera CLI, run as a separate process (its path comes in
// $TESSERA_CLI) against stores built with the C++ API: what it prints, and
// its exit status (0 ok, 1 damage found, 2 bad usage or unusable store).
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tessera/checkpoint.h"
#include "tessera/state_dict.h"
#include "tessera/store.h"
#include "catalog/catalog.h"
#include "test_util.h"

namespace fs = std::filesystem;
using tessera::test::files_in;
using tessera::test::flip_byte;
using tessera::test::TempDir;

namespace {

struct CliResult {
  int status = -1;
  std::string out;
  std::string err;
};

// For INFO(): what the CLI printed, shown when a check fails.
std::string transcript(const CliResult& r) {
  return "exit " + std::to_string(r.status) + "\n--- stdout ---\n" + r.out + "--- stderr ---\n" + r.err;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `tessera ARGS...`, stdout and stderr captured apart so tests can tell
// results from error messages.
CliResult run_cli(const std::vector<std::string>& args) {
  const char* cli = std::getenv("TESSERA_CLI");
  REQUIRE_MESSAGE(cli != nullptr, "set TESSERA_CLI to the tessera binary");
  TempDir io("cli-io");
  std::string command = shell_quote(cli);
  for (const std::string& a : args) command += " " + shell_quote(a);
  command += " >" + shell_quote(io / "out") + " 2>" + shell_quote(io / "err");
  const int raw = std::system(command.c_str());
  REQUIRE(raw != -1);
  REQUIRE(WIFEXITED(raw));
  return CliResult{WEXITSTATUS(raw), read_file(io / "out"), read_file(io / "err")};
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

size_t line_count(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

// What every store-level failure must look like: nothing on stdout, one
// line on stderr, prefixed, naming the culprit.
void check_one_line_error(const CliResult& r, const std::string& culprit) {
  INFO(transcript(r));
  CHECK(r.status == 2);
  CHECK(r.out.empty());
  CHECK(r.err.rfind("tessera: ", 0) == 0);
  CHECK(line_count(r.err) == 1);
  CHECK(contains(r.err, culprit));
}

constexpr const char* kNote = "say \"hi\"\nbye";  // a value that needs escaping

// A store with two checkpoints:
//   step-1: model.weight (64x1024 float32, 256 KiB of random bytes, so its
//           one chunk is stored raw), step = 1, note = kNote
//   step-2: the same model.weight (deduplicated: same chunk), model.bias
//           (16 float32), step = 2
// step-1's save writes the only pack holding model.weight's chunk.
class StoreFixture {
 public:
  StoreFixture() : dir_("cli-store"), store_path_(dir_ / "store") {
    auto weight = tessera::test::random_bytes(64 * 1024 * 4, 1);
    auto bias = tessera::test::random_bytes(16 * 4, 2);
    tessera::Store store = tessera::Store::open(store_path_);
    {
      tessera::StateDict state;
      state.add_tensor("model.weight", tessera::TensorView::contiguous("float32", 4, weight.data(), {64, 1024}));
      state.add_value("step", int64_t{1});
      state.add_value("note", std::string(kNote));
      tessera::save(state, store, "step-1");
    }
    packs_after_step1_ = packs();
    {
      tessera::StateDict state;
      state.add_tensor("model.weight", tessera::TensorView::contiguous("float32", 4, weight.data(), {64, 1024}));
      state.add_tensor("model.bias", tessera::TensorView::contiguous("float32", 4, bias.data(), {16}));
      state.add_value("step", int64_t{2});
      tessera::save(state, store, "step-2");
    }
  }

  const std::string& path() const { return store_path_; }

  std::vector<fs::path> packs() const {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(store_path_ + "/packs"))
      if (e.path().extension() == ".pack") out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
  }

  // The pack step-1 wrote: it holds model.weight's chunk.
  fs::path weight_pack() const {
    REQUIRE(packs_after_step1_.size() == 1);
    return packs_after_step1_[0];
  }

 private:
  TempDir dir_;
  std::string store_path_;
  std::vector<fs::path> packs_after_step1_;
};

void set_user_version(const std::string& db_path, int version) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(db_path.c_str(), &db) == SQLITE_OK);
  const std::string sql = "PRAGMA user_version = " + std::to_string(version);
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
  sqlite3_close(db);
  REQUIRE(rc == SQLITE_OK);
}

}  // namespace

TEST_CASE("ls lists each checkpoint with its sizes") {
  StoreFixture store;

  SUBCASE("table") {
    auto r = run_cli({"ls", store.path()});
    INFO(transcript(r));
    CHECK(r.status == 0);
    CHECK(r.err.empty());
    CHECK(line_count(r.out) == 3);  // header + two checkpoints
    CHECK(contains(r.out, "NAME"));
    CHECK(contains(r.out, "STORED"));
    CHECK(contains(r.out, "step-1"));
    CHECK(contains(r.out, "step-2"));
    CHECK(contains(r.out, "256.0 KiB"));  // step-1: the weight's 262144 bytes, human-sized
    CHECK(r.out.find("step-1") < r.out.find("step-2"));  // in the order they were saved
  }

  SUBCASE("json") {
    auto r = run_cli({"ls", store.path(), "--json"});
    INFO(transcript(r));
    CHECK(r.status == 0);
    CHECK(r.out.rfind("{\n", 0) == 0);
    CHECK(contains(r.out, "\"name\": \"step-1\""));
    CHECK(contains(r.out, "\"name\": \"step-2\""));
    CHECK(contains(r.out, "\"logical_bytes\": 262144"));           // step-1, exact
    CHECK(contains(r.out, "\"logical_bytes\": " + std::to_string(262144 + 64)));  // step-2
    CHECK(contains(r.out, "\"world_size\": 1"));
    CHECK(contains(r.out, "\"tensors\": 2"));
    CHECK(contains(r.out, "\"values\": 2"));
    CHECK(contains(r.out, "\"created\": \"20"));  // ISO 8601 timestamps
  }

  SUBCASE("a store without checkpoints") {
    TempDir dir("cli-empty");
    tessera::Store::open(dir / "store");
    auto r = run_cli({"ls", dir / "store"});
    INFO(transcript(r));
    CHECK(r.status == 0);
    CHECK(contains(r.out, "no checkpoints"));
    auto j = run_cli({"ls", dir / "store", "--json"});
    CHECK(contains(j.out, "\"checkpoints\": []"));
  }
}

TEST_CASE("show lists a checkpoint's tensors and values") {
  StoreFixture store;

  SUBCASE("table") {
    auto r = run_cli({"show", store.path(), "step-2"});
    INFO(transcript(r));
    CHECK(r.status == 0);
    CHECK(r.err.empty());
    const std::string header = r.out.substr(0, r.out.find('\n'));
    CHECK(contains(header, "step-2"));
    CHECK(contains(header, "world size 1"));
    CHECK(contains(header, "2 tensors"));
    CHECK(contains(header, "1 value,"));
    CHECK(contains(r.out, "model.weight"));
    CHECK(contains(r.out, "model.bias"));
    CHECK(contains(r.out, "float32"));
    CHECK(contains(r.out, "[64, 1024]"));
    CHECK(contains(r.out, "[16]"));
    CHECK(contains(r.out, "256.0 KiB"));
    CHECK(r.out.find("model.bias") < r.out.find("model.weight"));  // ordered by name
  }

  SUBCASE("values print on one row each") {
    auto r = run_cli({"show", store.path(), "step-1"});
    INFO(transcript(r));
    CHECK(r.status == 0);
    CHECK(contains(r.out, "say \"hi\"\\nbye"));  // the newline escaped, not breaking the row
    CHECK(line_count(r.out) == 6);             // header, blank, column header, 3 entries
  }

  SUBCASE("json") {
    auto r = run_cli({"show", store.path(), "step-1", "--json"});
    INFO(transcript(r));
    CHECK(r.status == 0);
    CHECK(contains(r.out, "\"name\": \"step-1\""));
    CHECK(contains(r.out, "\"name\": \"model.weight\""));
    CHECK(contains(r.out, "\"dtype\": \"float32\""));
    CHECK(contains(r.out, "\"shape\": [64, 1024]"));
    CHECK(contains(r.out, "\"chunks\": 1"));
    CHECK(contains(r.out, "\"logical_bytes\": 262144"));
    CHECK(contains(r.out, "\"kind\": \"int\""));
    CHECK(contains(r.out, "\"value\": \"1\""));
    CHECK(contains(r.out, "\"value\": \"say \\\"hi\\\"\\nbye\""));  // JSON-escaped
  }
}

TEST_CASE("verify passes an intact store") {
  StoreFixture store;

  auto all = run_cli({"verify", store.path()});
  INFO(transcript(all));
  CHECK(all.status == 0);
  CHECK(contains(all.out, "checked 2 chunks"));
  CHECK(contains(all.out, "all ok"));

  auto one = run_cli({"verify", store.path(), "step-1", "--threads", "1"});
  INFO(transcript(one));
  CHECK(one.status == 0);
  CHECK(contains(one.out, "checked 1 chunk,"));

  auto json = run_cli({"verify", store.path(), "--json"});
  INFO(transcript(json));
  CHECK(json.status == 0);
  CHECK(contains(json.out, "\"ok\": true"));
  CHECK(contains(json.out, "\"chunks_checked\": 2"));
  CHECK(contains(json.out, "\"damaged\": []"));
}

TEST_CASE("verify reports a damaged chunk, its pack and its users") {
  StoreFixture store;
  const fs::path pack = store.weight_pack();
  const std::string pack_name = pack.filename().string();
  flip_byte(pack, 100);  // inside model.weight's raw chunk

  auto r = run_cli({"verify", store.path()});
  INFO(transcript(r));
  CHECK(r.status == 1);
  CHECK(contains(r.out, "damaged chunk"));
  CHECK(contains(r.out, pack_name));
  CHECK(contains(r.out, "checksum mismatch"));
  CHECK(contains(r.out, "step-1: model.weight"));
  CHECK(contains(r.out, "step-2: model.weight"));
  CHECK(!contains(r.out, "model.bias"));  // its chunk is intact
  CHECK(contains(r.out, "1 of 2 chunks damaged"));

  auto json = run_cli({"verify", store.path(), "step-2", "--json"});
  INFO(transcript(json));
  CHECK(json.status == 1);
  CHECK(contains(json.out, "\"ok\": false"));
  CHECK(contains(json.out, "\"pack\": \"" + pack_name + "\""));
  CHECK(contains(json.out, "\"step-2: model.weight\""));
  CHECK(!contains(json.out, "step-1: model.weight"));  // only the checkpoints asked about

  // The catalog is intact, so inspection still works.
  CHECK(run_cli({"show", store.path(), "step-1"}).status == 0);
}

TEST_CASE("verify reports damaged catalog rows by checkpoint and tensor; loads refuse them") {
  StoreFixture store;
  {
    auto cat = tessera::catalog::Catalog::open(store.path() + "/catalog.db", tessera::catalog::Catalog::Mode::kReadWrite,
                                               false);
    cat.db().exec("UPDATE tensors SET row_sum = row_sum + 1 WHERE name = 'model.weight'");  // shared by both checkpoints
  }
  auto r = run_cli({"verify", store.path()});
  INFO(transcript(r));
  CHECK(r.status == 1);
  CHECK(contains(r.out, "damaged catalog rows of checkpoint 'step-1'"));
  CHECK(contains(r.out, "damaged catalog rows of checkpoint 'step-2'"));
  CHECK(contains(r.out, "tensor 'model.weight'"));
  CHECK(contains(r.out, "2 catalog problems, 0 of 0 chunks damaged"));  // their chunks go unchecked

  auto json = run_cli({"verify", store.path(), "step-2", "--json"});
  INFO(transcript(json));
  CHECK(json.status == 1);
  CHECK(contains(json.out, "\"ok\": false"));
  CHECK(contains(json.out, "\"checkpoint\": \"step-2\""));
  CHECK(!contains(json.out, "\"checkpoint\": \"step-1\""));

  auto export_run = run_cli({"export", store.path(), "step-1", store.path() + "/out"});
  INFO(transcript(export_run));
  CHECK(export_run.status != 0);
  CHECK(contains(export_run.err, "model.weight"));
}

// The CLI run on a pseudo-terminal (util-linux `script`): what the terminal shows.
std::string run_on_terminal(const std::vector<std::string>& args) {
  const char* cli = std::getenv("TESSERA_CLI");
  REQUIRE(cli != nullptr);
  TempDir io("cli-tty");
  std::string command = shell_quote(cli);
  for (const std::string& a : args) command += " " + shell_quote(a);
  const std::string outer = "script -qec " + shell_quote(command) + " /dev/null >" + shell_quote(io / "tty") + " 2>&1";
  const int raw = std::system(outer.c_str());
  REQUIRE(raw != -1);
  REQUIRE(WIFEXITED(raw));
  REQUIRE(WEXITSTATUS(raw) == 0);
  return read_file(io / "tty");
}

TEST_CASE("verify and export draw a progress bar on a terminal only, never with --quiet or --json") {
  StoreFixture store;
  const std::string bar = run_on_terminal({"verify", store.path()});
  INFO(bar);
  CHECK(contains(bar, "\r\033[Kverify  "));
  CHECK(contains(bar, " of "));
  CHECK(contains(bar, "/s"));
  CHECK(contains(bar, "\r\033[Kchecked 2 chunks"));  // erased before the result
  for (const char* flag : {"--quiet", "--json"}) {
    const std::string quiet = run_on_terminal({"verify", store.path(), flag});
    INFO(quiet);
    CHECK(!contains(quiet, "/s"));
  }
  const std::string exported = run_on_terminal({"export", store.path(), "step-1", store.path() + "/out"});
  INFO(exported);
  CHECK(contains(exported, "\r\033[Kexport  "));

  auto piped = run_cli({"verify", store.path()});  // stdout and stderr are files
  INFO(transcript(piped));
  CHECK(piped.status == 0);
  CHECK(!contains(piped.err, "/s"));
  CHECK(!contains(piped.out, "\r"));
}

TEST_CASE("verify reports chunks of a deleted pack") {
  StoreFixture store;
  const fs::path pack = store.weight_pack();
  REQUIRE(fs::remove(pack));

  auto r = run_cli({"verify", store.path(), "step-1"});
  INFO(transcript(r));
  CHECK(r.status == 1);
  CHECK(contains(r.out, pack.filename().string()));
  CHECK(contains(r.out, "step-1: model.weight"));

  for (const fs::path& p : store.packs()) fs::remove(p);
  auto none = run_cli({"verify", store.path()});
  INFO(transcript(none));
  CHECK(none.status == 1);
  CHECK(contains(none.out, "2 of 2 chunks damaged"));
  CHECK(contains(none.out, "step-2: model.bias"));
}

TEST_CASE("an unknown checkpoint is a usage error naming it") {
  StoreFixture store;
  check_one_line_error(run_cli({"show", store.path(), "step-404"}), "'step-404'");
  check_one_line_error(run_cli({"verify", store.path(), "step-1", "step-404"}), "'step-404'");
  // "--" lets a checkpoint name start with a dash.
  check_one_line_error(run_cli({"show", store.path(), "--", "-x"}), "'-x'");
}

TEST_CASE("a directory that is not a store is refused, naming it") {
  TempDir dir("cli-notastore");
  for (const char* command : {"ls", "verify"}) {
    CAPTURE(command);
    check_one_line_error(run_cli({command, dir.path()}), dir.path());
  }
  check_one_line_error(run_cli({"show", dir.path(), "step-1"}), dir.path());
  check_one_line_error(run_cli({"ls", dir / "missing"}), dir / "missing");
}

TEST_CASE("a catalog with a newer schema is refused") {
  StoreFixture store;
  set_user_version(store.path() + "/catalog.db", 99);
  auto r = run_cli({"ls", store.path()});
  check_one_line_error(r, "newer");
  CHECK(contains(r.err, store.path()));
  check_one_line_error(run_cli({"verify", store.path()}), "newer");
}

TEST_CASE("bad usage exits 2 with a message") {
  TempDir dir("cli-usage");
  const std::vector<std::vector<std::string>> cases = {
      {},                                       // no command
      {"frobnicate"},                           // unknown command
      {"ls"},                                   // missing STORE
      {"ls", dir.path(), "extra"},              // too many arguments
      {"show", dir.path()},                     // missing CHECKPOINT
      {"verify"},                               // missing STORE
      {"ls", dir.path(), "--jsn"},              // unknown option
      {"verify", dir.path(), "--threads"},      // option without its value
      {"verify", dir.path(), "--threads", "x"}, // option with a bad value
      {"ls", dir.path(), "--json=yes"},         // a switch given a value
      {"help", "frobnicate"},                   // help on an unknown command
  };
  for (const auto& args : cases) {
    auto r = run_cli(args);
    std::string line;
    for (const auto& a : args) line += a + " ";
    INFO("tessera " << line << "\n" << transcript(r));
    CHECK(r.status == 2);
    CHECK(r.out.empty());
    CHECK(!r.err.empty());
  }
  // The message names what was wrong.
  CHECK(contains(run_cli({"frobnicate"}).err, "tessera: unknown command 'frobnicate'"));
  CHECK(contains(run_cli({"ls", dir.path(), "--jsn"}).err, "'--jsn'"));
  CHECK(contains(run_cli({"show", dir.path()}).err, "usage: tessera show STORE CHECKPOINT"));
  CHECK(contains(run_cli({"verify", dir.path(), "--threads", "x"}).err, "'x'"));
}

TEST_CASE("--help prints usage and exits 0") {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"--help"}, {"-h"}, {"help"}}) {
    auto r = run_cli(args);
    INFO(transcript(r));
    CHECK(r.status == 0);
    CHECK(r.err.empty());
    CHECK(contains(r.out, "usage: tessera COMMAND"));
    for (const char* command : {"ls", "show", "verify"}) CHECK(contains(r.out, "  " + std::string(command) + " "));
  }
  for (const char* command : {"ls", "show", "verify"}) {
    CAPTURE(command);
    // --help wins over missing or bogus arguments.
    for (const auto& r : {run_cli({command, "--help"}), run_cli({"help", command}),
                          run_cli({command, "/no/such/store", "-h"})}) {
      INFO(transcript(r));
      CHECK(r.status == 0);
      CHECK(contains(r.out, "usage: tessera " + std::string(command)));
      CHECK(contains(r.out, "--json"));
    }
  }
}

TEST_CASE("import-dcp refuses an unknown --compression naming it, before starting Python; --help lists the names") {
  TempDir dir("cli-compression");
  // A Python that cannot start: a name the CLI accepts gets as far as starting it.
  const char* before = std::getenv("TESSERA_PYTHON");
  const std::string saved = before ? before : "";
  ::setenv("TESSERA_PYTHON", "/no/such/python", 1);
  for (const std::string bad : {"shuffle+lz4", "zstd", "LZ4"}) {
    auto r = run_cli({"import-dcp", dir / "dcp", dir / "store", "c", "--compression", bad});
    INFO(transcript(r));
    CHECK(r.status == 2);
    CHECK(r.out.empty());
    CHECK(contains(r.err, "tessera: import-dcp: --compression: unknown compression '" + bad +
                              "' (valid: auto, none, lz4, shuffle-lz4, shuffle-huffman)"));
    CHECK(contains(r.err, "usage: tessera import-dcp"));
    CHECK(!contains(r.err, "/no/such/python"));
  }
  for (const std::string good : {"auto", "none", "lz4", "shuffle-lz4", "shuffle-huffman"}) {
    auto r = run_cli({"import-dcp", dir / "dcp", dir / "store", "c", "--compression", good});
    INFO(transcript(r));
    CHECK(r.status == 2);
    CHECK(contains(r.err, "cannot start '/no/such/python'"));
  }
  if (before) ::setenv("TESSERA_PYTHON", saved.c_str(), 1);
  else ::unsetenv("TESSERA_PYTHON");
  CHECK(!fs::exists(dir / "store"));

  auto help = run_cli({"import-dcp", "--help"});
  INFO(transcript(help));
  CHECK(help.status == 0);
  CHECK(contains(help.out, "--compression C"));
  CHECK(contains(help.out, "auto, none, lz4, shuffle-lz4, shuffle-huffman (default auto)"));
}

// ---- rm, gc, diff; ls's ADDED and show's SHARED -----------------------------

namespace {

// Names, sizes and modification times of every file under `dir`, and the
// catalog's bytes: equal snapshots, unchanged store.
std::string snapshot(const std::string& dir) {
  std::string out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    out += e.path().string();
    if (e.is_regular_file())
      out += " " + std::to_string(e.file_size()) + " " +
             std::to_string(fs::last_write_time(e.path()).time_since_epoch().count());
    out += '\n';
  }
  return out + read_file(dir + "/catalog.db");
}

// The number after `"key": ` in JSON output (the first occurrence).
double json_number(const std::string& json, const std::string& key) {
  const size_t at = json.find("\"" + key + "\": ");
  REQUIRE(at != std::string::npos);
  return std::strtod(json.c_str() + at + key.size() + 4, nullptr);
}

// A store with three saves of one 64 KiB float32 tensor "w": a, then b with
// element 10 changed by +0.5, then c equal to b.
struct WeightsFixture {
  TempDir dir{"cli-hist"};
  std::string path = dir / "store";
  std::vector<float> a = std::vector<float>(16384), b;

  WeightsFixture() {
    for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i % 97) / 8.0f;
    b = a;
    b[10] += 0.5f;
    tessera::Store store = tessera::Store::open(path);
    tessera::SaveOptions so;
    so.compression = tessera::Compression::kNone;
    save_weights(store, a, "a", so);
    save_weights(store, b, "b", so);
    save_weights(store, b, "c", so);
  }
  static void save_weights(tessera::Store& store, std::vector<float>& w, const std::string& name,
                           const tessera::SaveOptions& so) {
    tessera::StateDict sd;
    sd.add_tensor("w", tessera::TensorView::contiguous("float32", 4, w.data(), {16384}));
    tessera::save(sd, store, name, so);
  }
};

}  // namespace

TEST_CASE("ls shows the bytes each checkpoint added; show marks tensors shared with the previous one") {
  StoreFixture store;
  auto ls = run_cli({"ls", store.path()});
  INFO(transcript(ls));
  CHECK(ls.status == 0);
  CHECK(contains(ls.out, "ADDED"));
  const std::string step2 = ls.out.substr(ls.out.find("step-2"));
  CHECK(contains(step2, "64 B\n"));  // step-2 added only the bias; ADDED is the last column

  auto json = run_cli({"ls", store.path(), "--json"});
  CHECK(contains(json.out, "\"added_bytes\": 262144"));  // step-1: the weight
  CHECK(contains(json.out, "\"added_bytes\": 64"));      // step-2: the bias

  auto show = run_cli({"show", store.path(), "step-2"});
  INFO(transcript(show));
  CHECK(show.status == 0);
  CHECK(contains(show.out, "SHARED"));
  const std::string weight_row = show.out.substr(show.out.find("model.weight"));
  const std::string bias_row = show.out.substr(show.out.find("model.bias"));
  CHECK(contains(weight_row.substr(0, weight_row.find('\n')), " yes"));
  CHECK(contains(bias_row.substr(0, bias_row.find('\n')), " no"));
  auto show_json = run_cli({"show", store.path(), "step-2", "--json"});
  CHECK(contains(show_json.out, "\"shared_with_previous\": true"));
  CHECK(contains(show_json.out, "\"shared_with_previous\": false"));
}

TEST_CASE("rm --gc frees the removed checkpoint's space at once and reports it") {
  StoreFixture store;
  const size_t packs_before = store.packs().size();
  auto r = run_cli({"rm", store.path(), "step-2", "--gc"});  // its pack holds only the bias
  INFO(transcript(r));
  CHECK(r.status == 0);
  CHECK(contains(r.out, "removed 1 checkpoint: 'step-2'"));
  CHECK(contains(r.out, "gc freed "));
  CHECK(!contains(r.out, "run 'tessera gc"));
  CHECK(store.packs().size() == packs_before - 1);
  CHECK(run_cli({"verify", store.path()}).status == 0);

  StoreFixture again;
  auto json = run_cli({"rm", again.path(), "step-2", "--gc", "--json"});
  INFO(transcript(json));
  CHECK(json.status == 0);
  CHECK(contains(json.out, "\"freed_bytes\": "));
  CHECK(!contains(json.out, "\"freed_bytes\": 0,"));
}

TEST_CASE("rm removes checkpoints, all or nothing") {
  StoreFixture store;
  auto unknown = run_cli({"rm", store.path(), "step-1", "step-404"});
  check_one_line_error(unknown, "'step-404'");
  CHECK(contains(unknown.err, "nothing removed"));
  CHECK(contains(run_cli({"ls", store.path()}).out, "step-1"));

  auto r = run_cli({"rm", store.path(), "step-1"});
  INFO(transcript(r));
  CHECK(r.status == 0);
  CHECK(contains(r.out, "removed 1 checkpoint: 'step-1'"));
  CHECK(contains(r.out, "tessera gc"));
  auto ls = run_cli({"ls", store.path()});
  CHECK(!contains(ls.out, "step-1"));
  CHECK(contains(ls.out, "step-2"));
  CHECK(run_cli({"verify", store.path()}).status == 0);

  check_one_line_error(run_cli({"rm", store.path() + "/nope", "x"}), store.path() + "/nope");
}

TEST_CASE("rm --json lists what it removed; --version prints the version") {
  StoreFixture store;
  auto r = run_cli({"rm", store.path(), "step-1", "--json"});
  INFO(transcript(r));
  CHECK(r.status == 0);
  CHECK(contains(r.out, "\"removed\": [\"step-1\"]"));
  CHECK(!contains(run_cli({"ls", store.path()}).out, "step-1"));
  auto none = run_cli({"rm", store.path(), "--keep-last", "5", "--json"});
  CHECK(none.status == 0);
  CHECK(contains(none.out, "\"removed\": []"));
  auto v = run_cli({"--version"});
  CHECK(v.status == 0);
  CHECK(contains(v.out, "tessera " TESSERA_VERSION));
}

TEST_CASE("rm --keep-last removes all but the newest checkpoints") {
  WeightsFixture f;
  auto r = run_cli({"rm", f.path, "--keep-last", "2"});
  INFO(transcript(r));
  CHECK(r.status == 0);
  CHECK(contains(r.out, "removed 1 checkpoint: 'a'"));
  auto again = run_cli({"rm", f.path, "--keep-last", "2"});
  CHECK(again.status == 0);
  CHECK(contains(again.out, "nothing to remove"));
  auto named = run_cli({"rm", f.path, "c", "--keep-last", "1"});  // c named; of the rest, keep 1
  CHECK(named.status == 0);
  CHECK(contains(named.out, "removed 1 checkpoint: 'c'"));
  auto ls = run_cli({"ls", f.path, "--json"});
  CHECK(contains(ls.out, "\"name\": \"b\""));
  CHECK(!contains(ls.out, "\"name\": \"a\""));
  CHECK(!contains(ls.out, "\"name\": \"c\""));
}

TEST_CASE("gc --dry-run prints the plan and changes nothing; gc then frees what it planned") {
  StoreFixture store;
  const std::string bias_pack = [&] {
    for (const auto& p : store.packs())
      if (p != store.weight_pack()) return p.filename().string();
    return std::string();
  }();
  REQUIRE(!bias_pack.empty());
  REQUIRE(run_cli({"rm", store.path(), "step-2"}).status == 0);
  const std::string leftover = store.path() + "/tmp/999-1-1.partial";
  std::ofstream(leftover) << "left by a killed save";
  const std::string before = snapshot(store.path());

  auto dry = run_cli({"gc", store.path(), "--dry-run"});
  INFO(transcript(dry));
  CHECK(dry.status == 0);
  CHECK(contains(dry.out, "delete"));
  CHECK(contains(dry.out, bias_pack));
  CHECK(contains(dry.out, "1 pack to delete"));
  CHECK(contains(dry.out, "frees 168 B"));  // the bias pack; the leftover is younger than the grace period
  CHECK(contains(dry.out, "kept 1 file"));
  CHECK(contains(dry.out, "dry run: nothing changed"));
  auto dry_json = run_cli({"gc", store.path(), "--dry-run", "--json", "--grace", "0"});
  INFO(transcript(dry_json));
  CHECK(contains(dry_json.out, "\"name\": \"" + bias_pack + "\""));
  CHECK(contains(dry_json.out, "\"name\": \"999-1-1.partial\""));
  CHECK(contains(dry_json.out, "\"dry_run\": true"));
  CHECK(snapshot(store.path()) == before);

  auto gc = run_cli({"gc", store.path()});
  INFO(transcript(gc));
  CHECK(gc.status == 0);
  CHECK(contains(gc.out, "deleted 1 pack"));
  CHECK(!fs::exists(store.path() + "/packs/" + bias_pack));
  CHECK(fs::exists(store.weight_pack()));
  CHECK(fs::exists(leftover));  // young: kept
  auto now = run_cli({"gc", store.path(), "--grace", "0", "--json"});
  INFO(transcript(now));
  CHECK(now.status == 0);
  CHECK(contains(now.out, "\"removed_files\": [\"tmp/999-1-1.partial\"]"));
  CHECK(!fs::exists(leftover));
  CHECK(run_cli({"verify", store.path()}).status == 0);
  CHECK(run_cli({"show", store.path(), "step-1"}).status == 0);

  for (const auto& bad : std::vector<std::vector<std::string>>{{"gc", store.path(), "--rewrite-below", "2"},
                                                               {"gc", store.path(), "--rewrite-below", "x"},
                                                               {"gc", store.path(), "--grace", "-1"},
                                                               {"rm", store.path(), "--keep-last", "0"},
                                                               {"rm", store.path()},
                                                               {"diff", store.path(), "step-1"}}) {
    auto r = run_cli(bad);
    INFO(transcript(r));
    CHECK(r.status == 2);
    CHECK(r.out.empty());
  }
}

TEST_CASE("diff exits 0 when identical, 1 when different, 2 on errors") {
  StoreFixture store;
  auto same = run_cli({"diff", store.path(), "step-1", "step-1"});
  INFO(transcript(same));
  CHECK(same.status == 0);
  CHECK(contains(same.out, "identical"));

  auto r = run_cli({"diff", store.path(), "step-1", "step-2"});
  INFO(transcript(r));
  CHECK(r.status == 1);
  CHECK(contains(r.out, "added"));
  CHECK(contains(r.out, "model.bias"));
  CHECK(contains(r.out, "removed"));
  CHECK(contains(r.out, "note"));
  CHECK(contains(r.out, "changed"));
  CHECK(contains(r.out, "1 added, 1 removed, 1 changed, 1 unchanged"));

  auto json = run_cli({"diff", store.path(), "step-1", "step-2", "--json"});
  INFO(transcript(json));
  CHECK(json.status == 1);
  CHECK(contains(json.out, "\"identical\": false"));
  CHECK(contains(json.out, "\"added\": [\"model.bias\"]"));
  CHECK(contains(json.out, "\"removed\": [\"note\"]"));
  CHECK(contains(json.out, "\"change\": \"value\""));

  check_one_line_error(run_cli({"diff", store.path(), "step-1", "step-404"}), "'step-404'");
}

TEST_CASE("diff --values prints max |delta| and relative L2; a damaged chunk is an error (2), not a difference") {
  WeightsFixture f;
  double d2 = 0, a2 = 0;
  for (size_t i = 0; i < f.a.size(); ++i) {
    d2 += (static_cast<double>(f.b[i]) - f.a[i]) * (static_cast<double>(f.b[i]) - f.a[i]);
    a2 += static_cast<double>(f.a[i]) * f.a[i];
  }
  auto r = run_cli({"diff", f.path, "a", "b", "--values", "--json"});
  INFO(transcript(r));
  CHECK(r.status == 1);
  CHECK(contains(r.out, "\"change\": \"content\""));
  CHECK(contains(r.out, "\"changed_chunks\": 1"));
  CHECK(json_number(r.out, "max_abs_diff") == static_cast<double>(f.b[10]) - f.a[10]);
  CHECK(json_number(r.out, "relative_l2") == doctest::Approx(std::sqrt(d2 / a2)).epsilon(1e-12));

  auto table = run_cli({"diff", f.path, "a", "b", "--values"});
  INFO(transcript(table));
  CHECK(table.status == 1);
  CHECK(contains(table.out, "REL_L2"));
  CHECK(contains(table.out, "0.5"));  // max |delta|
  CHECK(contains(table.out, "content"));
  CHECK(run_cli({"diff", f.path, "b", "c", "--values"}).status == 0);

  // Damage a's chunk: the pack a wrote is the oldest.
  fs::path oldest;
  for (const auto& e : fs::directory_iterator(f.path + "/packs"))
    if (oldest.empty() || fs::last_write_time(e.path()) < fs::last_write_time(oldest)) oldest = e.path();
  flip_byte(oldest, 20);
  auto damaged = run_cli({"diff", f.path, "a", "b", "--values"});
  check_one_line_error(damaged, "checkpoint 'a', tensor 'w'");
  CHECK(run_cli({"diff", f.path, "a", "b"}).status == 1);  // by chunk ids: nothing read
}

TEST_CASE("rm, gc and diff have --help") {
  auto all = run_cli({"--help"});
  for (const char* command : {"rm", "gc", "diff"}) {
    CAPTURE(command);
    CHECK(contains(all.out, "  " + std::string(command) + " "));
    for (const auto& r : {run_cli({command, "--help"}), run_cli({"help", command})}) {
      INFO(transcript(r));
      CHECK(r.status == 0);
      CHECK(contains(r.out, "usage: tessera " + std::string(command)));
    }
  }
  CHECK(contains(run_cli({"gc", "--help"}).out, "--dry-run"));
  CHECK(contains(run_cli({"gc", "--help"}).out, "--grace SECONDS"));
  CHECK(contains(run_cli({"diff", "--help"}).out, "--values"));
  CHECK(contains(run_cli({"rm", "--help"}).out, "--keep-last N"));
}

// ---- export -----------------------------------------------------------------

namespace {

// The data of a safetensors file: what follows the 8-byte length and the
// header; `header` gets the header. (export_test.cc checks the format in
// depth with a reader written from the spec.)
std::string safetensors_data(const std::string& file, std::string* header) {
  REQUIRE(file.size() >= 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(file[static_cast<size_t>(i)]);
  REQUIRE(n <= file.size() - 8);
  *header = file.substr(8, n);
  return file.substr(8 + n);
}

std::string bytes_text(const std::vector<std::byte>& b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

}  // namespace

TEST_CASE("export writes model.safetensors, or shards and an index; errors exit 2, damage 1") {
  StoreFixture store;
  TempDir dir("cli-export");
  const std::string weight = bytes_text(tessera::test::random_bytes(64 * 1024 * 4, 1));
  const std::string bias = bytes_text(tessera::test::random_bytes(16 * 4, 2));

  auto r = run_cli({"export", store.path(), "step-2", "--format", "safetensors", dir / "out"});
  INFO(transcript(r));
  CHECK(r.status == 0);
  CHECK(contains(r.out, "exported 2 tensors"));
  CHECK(contains(r.out, "model.safetensors"));
  CHECK(contains(r.out, "not exported: 1 value"));
  CHECK(files_in(dir / "out") == std::set<std::string>{"model.safetensors"});
  std::string header;
  // Same element size: laid out by name, model.bias first.
  CHECK(safetensors_data(read_file(dir / "out/model.safetensors"), &header) == bias + weight);
  CHECK(contains(header, "\"model.weight\":{\"dtype\":\"F32\",\"shape\":[64,1024],\"data_offsets\":[64,262208]}"));
  CHECK(contains(header, "\"format\":\"pt\""));
  CHECK(contains(header, "\"tessera_checkpoint\":\"step-2\""));

  // Sharded, prefix stripped, JSON.
  auto s = run_cli({"export", store.path(), "step-2", dir / "sharded", "--max-shard-bytes", "1KiB", "--prefix",
                    "model.", "--strip-prefix", "--json"});
  INFO(transcript(s));
  CHECK(s.status == 0);
  CHECK(contains(s.out, "\"index\": \"model.safetensors.index.json\""));
  CHECK(contains(s.out, "\"total_size\": 262208"));
  CHECK(contains(s.out, "\"name\": \"model-00002-of-00002.safetensors\""));
  CHECK(files_in(dir / "sharded") == std::set<std::string>{"model-00001-of-00002.safetensors",
                                                           "model-00002-of-00002.safetensors",
                                                           "model.safetensors.index.json"});
  const std::string index = read_file(dir / "sharded/model.safetensors.index.json");
  CHECK(contains(index, "\"total_size\": 262208"));
  CHECK(contains(index, "\"bias\": \"model-00001-of-00002.safetensors\""));
  CHECK(contains(index, "\"weight\": \"model-00002-of-00002.safetensors\""));
  CHECK(safetensors_data(read_file(dir / "sharded/model-00002-of-00002.safetensors"), &header) == weight);
  CHECK(contains(header, "\"weight\":{\"dtype\":\"F32\""));

  // An earlier export: refused without --force, replaced with it.
  auto again = run_cli({"export", store.path(), "step-2", dir / "sharded"});
  check_one_line_error(again, "--force");
  auto forced = run_cli({"export", store.path(), "step-2", dir / "sharded", "--force"});
  INFO(transcript(forced));
  CHECK(forced.status == 0);
  CHECK(contains(forced.out, "removed 3 files of the earlier export"));
  CHECK(files_in(dir / "sharded") == std::set<std::string>{"model.safetensors"});

  // Usage and store errors: exit 2, one line.
  check_one_line_error(run_cli({"export", store.path(), "step-404", dir / "x"}), "'step-404'");
  check_one_line_error(run_cli({"export", store.path(), "step-2", dir / "x", "--prefix", "optim."}), "'optim.'");
  for (const auto& bad : std::vector<std::vector<std::string>>{
           {"export", store.path(), "step-2", dir / "x", "--format", "onnx"},
           {"export", store.path(), "step-2", dir / "x", "--max-shard-bytes", "5XB"},
           {"export", store.path(), "step-2", dir / "x", "--max-shard-bytes", "0"},
           {"export", store.path(), "step-2", dir / "x", "--strip-prefix"},
           {"export", store.path(), "step-2"}}) {
    auto b = run_cli(bad);
    INFO(transcript(b));
    CHECK(b.status == 2);
    CHECK(b.out.empty());
    CHECK(contains(b.err, "usage: tessera export"));
  }
  CHECK(files_in(dir / "x").empty());

  // Damage: exit 1 naming the tensor; nothing written.
  flip_byte(store.weight_pack(), 20);
  auto damaged = run_cli({"export", store.path(), "step-2", dir / "damaged"});
  INFO(transcript(damaged));
  CHECK(damaged.status == 1);
  CHECK(damaged.out.empty());
  CHECK(contains(damaged.err, "tessera: checkpoint 'step-2', tensor 'model.weight'"));
  CHECK(files_in(dir / "damaged").empty());
}

TEST_CASE("export has --help") {
  CHECK(contains(run_cli({"--help"}).out, "  export "));
  for (const auto& r : {run_cli({"export", "--help"}), run_cli({"help", "export"})}) {
    INFO(transcript(r));
    CHECK(r.status == 0);
    CHECK(contains(r.out, "usage: tessera export STORE CHECKPOINT OUT"));
    CHECK(contains(r.out, "--max-shard-bytes N"));
    CHECK(contains(r.out, "--prefix P"));
    CHECK(contains(r.out, "--skip-unsupported"));
  }
}

TEST_CASE("names from a hostile store cannot drive the terminal or forge rows") {
  TempDir dir("cli");
  const std::string store_path = dir / "store";
  const std::string evil_ckpt = "x\n1999-01-01  forged\x1b[2J";
  const std::string evil_tensor = "w\x1b]0;pwned\x07\xc2\x9b" "31m";
  {
    std::vector<float> w(4, 1.0f);
    tessera::Store store = tessera::Store::open(store_path);
    tessera::StateDict state;
    state.add_tensor(evil_tensor, tessera::TensorView::contiguous("float32", 4, w.data(), {4}));
    state.add_value("n\x1b[Kote", std::string("v\x1b[1m"));
    tessera::save(state, store, evil_ckpt);
  }
  const auto ls = run_cli({"ls", store_path});
  const auto show = run_cli({"show", store_path, evil_ckpt});
  REQUIRE(ls.status == 0);
  REQUIRE(show.status == 0);
  for (const auto* r : {&ls, &show}) {
    INFO(r->out);
    CHECK_FALSE(contains(r->out, "\x1b"));
    CHECK_FALSE(contains(r->out, "\x07"));
    CHECK_FALSE(contains(r->out, "\xc2\x9b"));
  }
  CHECK(line_count(ls.out) == 2);  // header and one row: the newline did not start a row
  CHECK(contains(ls.out, "x\\x0a1999-01-01  forged\\x1b[2J"));
  CHECK(contains(show.out, "w\\x1b]0;pwned\\x07\\x9b31m"));
  // Error messages that quote a name are escaped too.
  const auto missing = run_cli({"show", store_path, "gone\x1b[2J"});
  CHECK(missing.status != 0);
  CHECK_FALSE(contains(missing.err, "\x1b"));
  CHECK(contains(missing.err, "gone\\x1b[2J"));
  // --json keeps the exact names (escaped the JSON way).
  const auto json = run_cli({"ls", store_path, "--json"});
  CHECK(contains(json.out, "\\u001b[2J"));
}
