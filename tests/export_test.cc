// export_safetensors(): checked by a safetensors reader written here from
// the format's spec (not from the writer): the 8-byte little-endian header
// length, the JSON header, offsets that index the whole data section
// contiguously and in bounds, dtypes and shapes, and every tensor's bytes
// compared with what was saved. Sharded and unsharded outputs, prefixes,
// checkpoints saved as shards of several ranks, and the errors.
//
// With TESSERA_PYTHON set to a Python that has `safetensors` and `torch`,
// one case also reads the output with the reference implementation.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "geometry/box.h"
#include "tessera/checkpoint.h"
#include "tessera/distributed.h"
#include "tessera/error.h"
#include "tessera/export.h"
#include "test_util.h"

using namespace tessera;
using tessera::test::run_ranks;
using tessera::test::TempDir;
namespace fs = std::filesystem;

namespace {

bool contains_text(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::string message_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), ("cannot open " + path));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// ---- a minimal JSON reader (RFC 8259: objects, arrays, strings, integers,
// true/false/null), enough for safetensors headers and the HF index ----------

struct JsonValue {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = kNull;
  bool boolean = false;
  std::string text;    // strings; numbers as written
  std::vector<JsonValue> items;
  std::vector<std::pair<std::string, JsonValue>> members;  // in document order

  const JsonValue* find(const std::string& key) const {
    for (const auto& [k, v] : members)
      if (k == key) return &v;
    return nullptr;
  }
  uint64_t as_u64() const {
    REQUIRE(kind == kNumber);
    REQUIRE(!text.empty());
    REQUIRE(text.find_first_not_of("0123456789") == std::string::npos);
    return std::stoull(text);
  }
};

class JsonParser {
 public:
  explicit JsonParser(const std::string& s) : s_(s) {}

  JsonValue document() {
    JsonValue v = value();
    space();
    if (i_ != s_.size()) fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& why) {
    throw std::runtime_error("bad JSON at byte " + std::to_string(i_) + ": " + why);
  }
  void space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  char peek() {
    space();
    if (i_ >= s_.size()) fail("unexpected end");
    return s_[i_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  bool literal(const char* word) {
    const size_t n = std::strlen(word);
    if (s_.compare(i_, n, word) != 0) return false;
    i_ += n;
    return true;
  }
  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  uint32_t hex4() {
    if (i_ + 4 > s_.size()) fail("short \\u escape");
    const uint32_t v = static_cast<uint32_t>(std::stoul(s_.substr(i_, 4), nullptr, 16));
    i_ += 4;
    return v;
  }
  std::string string() {
    expect('"');
    std::string out;
    while (true) {
      if (i_ >= s_.size()) fail("unterminated string");
      const char c = s_[i_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("raw control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) fail("unterminated escape");
      const char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && literal("\\u")) cp = 0x10000 + ((cp - 0xD800) << 10) + (hex4() - 0xDC00);
          append_utf8(out, cp);
          break;
        }
        default: fail("bad escape");
      }
    }
  }
  JsonValue value() {
    JsonValue v;
    const char c = peek();
    if (c == '{') {
      v.kind = JsonValue::kObject;
      ++i_;
      if (peek() == '}') {
        ++i_;
        return v;
      }
      while (true) {
        std::string key = string();
        for (const auto& m : v.members)
          if (m.first == key) fail("duplicate key '" + key + "'");
        expect(':');
        v.members.emplace_back(std::move(key), value());
        if (peek() == ',') {
          ++i_;
          continue;
        }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.kind = JsonValue::kArray;
      ++i_;
      if (peek() == ']') {
        ++i_;
        return v;
      }
      while (true) {
        v.items.push_back(value());
        if (peek() == ',') {
          ++i_;
          continue;
        }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.kind = JsonValue::kString;
      v.text = string();
      return v;
    }
    if (literal("true") || literal("false")) {
      v.kind = JsonValue::kBool;
      v.boolean = s_[i_ - 1] == 'e' && s_[i_ - 2] == 'u';
      return v;
    }
    if (literal("null")) return v;
    const size_t start = i_;
    while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || std::strchr("+-.eE", s_[i_]))) ++i_;
    if (start == i_) fail("unexpected character");
    v.kind = JsonValue::kNumber;
    v.text = s_.substr(start, i_ - start);
    return v;
  }

  const std::string& s_;
  size_t i_ = 0;
};

// ---- a safetensors reader, from the spec ----------------------------------------

int64_t safetensors_elem_size(const std::string& dtype) {
  static const std::map<std::string, int64_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"F8_E4M3FNUZ", 1}, {"F8_E5M2FNUZ", 1},
      {"F8_E8M0", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},     {"BF16", 2},    {"I32", 4},         {"U32", 4},
      {"F32", 4},  {"F64", 8}, {"I64", 8}, {"U64", 8},     {"C64", 8}};
  auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

struct ReadTensor {
  std::string dtype;
  Shape shape;
  std::string bytes;
  uint64_t begin = 0;  // data_offsets[0]
};

struct SafetensorsFile {
  uint64_t header_len = 0;
  std::map<std::string, std::string> metadata;
  std::map<std::string, ReadTensor> tensors;
  std::vector<std::string> header_order;  // tensor names as the header lists them
};

// Parses and checks one file; every check failure is a test failure.
SafetensorsFile read_safetensors(const std::string& path) {
  INFO("file ", path);
  const std::string file = read_all(path);
  REQUIRE(file.size() >= 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(file[static_cast<size_t>(i)]);
  REQUIRE(n <= file.size() - 8);
  REQUIRE(n < 100'000'000);  // the reference reader's limit
  CHECK(n % 8 == 0);         // tessera pads so the data starts 8-aligned
  const std::string header = file.substr(8, n);
  REQUIRE(!header.empty());
  CHECK(header[0] == '{');
  const size_t last = header.find_last_not_of(' ');
  REQUIRE(last != std::string::npos);
  CHECK(header[last] == '}');  // padding is spaces only
  JsonValue doc;
  try {
    doc = JsonParser(header).document();
  } catch (const std::exception& e) {
    FAIL("header is not JSON: ", e.what(), "\n", header);
  }
  REQUIRE(doc.kind == JsonValue::kObject);
  SafetensorsFile out;
  out.header_len = n;
  const uint64_t data_size = file.size() - 8 - n;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, v] : doc.members) {
    INFO("entry ", name);
    REQUIRE(v.kind == JsonValue::kObject);
    if (name == "__metadata__") {
      for (const auto& [k, mv] : v.members) {
        REQUIRE(mv.kind == JsonValue::kString);  // string to string only
        out.metadata[k] = mv.text;
      }
      continue;
    }
    const JsonValue* dtype = v.find("dtype");
    const JsonValue* shape = v.find("shape");
    const JsonValue* offsets = v.find("data_offsets");
    REQUIRE(dtype);
    REQUIRE(shape);
    REQUIRE(offsets);
    CHECK(v.members.size() == 3);
    REQUIRE(dtype->kind == JsonValue::kString);
    const int64_t elem = safetensors_elem_size(dtype->text);
    REQUIRE_MESSAGE(elem > 0, ("unknown dtype " + dtype->text));
    REQUIRE(shape->kind == JsonValue::kArray);
    REQUIRE(offsets->kind == JsonValue::kArray);
    REQUIRE(offsets->items.size() == 2);
    ReadTensor t;
    t.dtype = dtype->text;
    uint64_t elements = 1;
    for (const JsonValue& d : shape->items) {
      t.shape.push_back(static_cast<int64_t>(d.as_u64()));
      elements *= d.as_u64();
    }
    const uint64_t begin = offsets->items[0].as_u64(), end = offsets->items[1].as_u64();
    REQUIRE(begin <= end);
    REQUIRE(end <= data_size);
    CHECK(end - begin == elements * static_cast<uint64_t>(elem));
    CHECK(begin % static_cast<uint64_t>(elem) == 0);  // aligned to its element size
    t.begin = begin;
    t.bytes = file.substr(8 + n + begin, end - begin);
    ranges.emplace_back(begin, end);
    out.header_order.push_back(name);
    REQUIRE(out.tensors.emplace(name, std::move(t)).second);
  }
  // The data section is indexed entirely, without holes or overlaps.
  std::sort(ranges.begin(), ranges.end());
  uint64_t at = 0;
  for (const auto& [b, e] : ranges) {
    CHECK(b == at);
    at = e;
  }
  CHECK(at == data_size);
  // Laid out in header order.
  for (size_t i = 1; i < out.header_order.size(); ++i)
    CHECK(out.tensors[out.header_order[i - 1]].begin <= out.tensors[out.header_order[i]].begin);
  return out;
}

// Every tensor of an export directory: model.safetensors alone, or the
// shards the index names (checked against the index).
struct ExportDir {
  std::map<std::string, ReadTensor> tensors;
  std::map<std::string, std::string> file_of;  // tensor -> file
  std::vector<std::string> files;
  bool sharded = false;
  uint64_t total_size = 0;
};

ExportDir read_export(const std::string& dir) {
  ExportDir out;
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  for (const auto& n : names) CHECK_MESSAGE(n[0] != '.', ("temporary file left: " + n));
  const bool single = names.count("model.safetensors") != 0, index = names.count("model.safetensors.index.json") != 0;
  REQUIRE(single != index);
  out.sharded = index;
  if (single) {
    CHECK(names.size() == 1);
    out.files = {"model.safetensors"};
    auto f = read_safetensors(dir + "/model.safetensors");
    for (auto& [name, t] : f.tensors) {
      out.file_of[name] = "model.safetensors";
      out.total_size += t.bytes.size();
      out.tensors.emplace(name, std::move(t));
    }
    return out;
  }
  const JsonValue idx = JsonParser(read_all(dir + "/model.safetensors.index.json")).document();
  REQUIRE(idx.kind == JsonValue::kObject);
  const JsonValue* meta = idx.find("metadata");
  const JsonValue* map = idx.find("weight_map");
  REQUIRE(meta);
  REQUIRE(map);
  REQUIRE(meta->find("total_size"));
  const uint64_t total = meta->find("total_size")->as_u64();
  std::set<std::string> shard_files;
  for (const auto& [name, file] : map->members) {
    REQUIRE(file.kind == JsonValue::kString);
    shard_files.insert(file.text);
  }
  const size_t count = shard_files.size();
  CHECK(count >= 2);
  for (size_t i = 0; i < count; ++i) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, count);
    out.files.push_back(buf);
    CHECK_MESSAGE(shard_files.count(buf), (std::string("no tensor in ") + buf));
    CHECK_MESSAGE(names.count(buf), (std::string("missing ") + buf));
  }
  CHECK(names.size() == count + 1);
  for (const std::string& file : out.files) {
    auto f = read_safetensors(dir + "/" + file);
    for (auto& [name, t] : f.tensors) {
      REQUIRE_MESSAGE(!out.tensors.count(name), ("tensor in two shards: " + name));
      const JsonValue* where = map->find(name);
      REQUIRE_MESSAGE(where, ("tensor missing from the weight map: " + name));
      CHECK(where->text == file);
      out.file_of[name] = file;
      out.total_size += t.bytes.size();
      out.tensors.emplace(name, std::move(t));
    }
  }
  CHECK(out.tensors.size() == map->members.size());
  CHECK(total == out.total_size);
  out.total_size = total;
  return out;
}

// ---- saved state --------------------------------------------------------------

// A tensor saved whole: its name, dtype, shape and bytes.
struct Saved {
  std::string name, dtype, st_dtype;
  size_t elem;
  Shape shape;
  std::vector<std::byte> bytes;
};

Saved make(const std::string& name, const std::string& dtype, const std::string& st, size_t elem, Shape shape,
           uint64_t seed) {
  const size_t n = static_cast<size_t>(volume(shape)) * elem;
  Saved s{name, dtype, st, elem, shape, seed % 2 ? test::random_bytes(n, seed) : test::smooth_bytes(n, seed)};
  if (dtype == "bool")
    for (std::byte& b : s.bytes) b &= std::byte{1};
  return s;
}

void add(StateDict& sd, Saved& s) {
  sd.add_tensor(s.name, TensorView::contiguous(s.dtype, s.elem, s.bytes.data(), s.shape));
}

std::string as_string(const std::vector<std::byte>& b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

void check_tensor(const ExportDir& d, const std::string& name, const Saved& s) {
  INFO("tensor ", name);
  auto it = d.tensors.find(name);
  REQUIRE(it != d.tensors.end());
  CHECK(it->second.dtype == s.st_dtype);
  CHECK(it->second.shape == s.shape);
  CHECK(it->second.bytes == as_string(s.bytes));
}

// Model-like state: fp32, bf16, int64, bool, float16 and uint8 tensors,
// 0-D and empty ones, and values.
struct ModelState {
  std::vector<Saved> tensors;
  ModelState() {
    tensors.push_back(make("model.embed.weight", "bfloat16", "BF16", 2, {97, 64}, 1));
    tensors.push_back(make("model.layers.0.mlp.up.weight", "float32", "F32", 4, {130, 33}, 2));
    tensors.push_back(make("model.layers.0.mlp.up.bias", "float32", "F32", 4, {130}, 3));
    tensors.push_back(make("model.layers.0.norm.weight", "float16", "F16", 2, {64}, 4));
    tensors.push_back(make("model.layers.1.attn.qkv", "bfloat16", "BF16", 2, {3, 16, 40}, 5));
    tensors.push_back(make("model.scale", "float32", "F32", 4, {}, 6));          // 0-D
    tensors.push_back(make("model.empty", "float32", "F32", 4, {0, 8}, 7));      // no elements
    tensors.push_back(make("model.mask", "bool", "BOOL", 1, {5, 3}, 8));
    tensors.push_back(make("buffers.position_ids", "int64", "I64", 8, {1, 77}, 9));
    tensors.push_back(make("buffers.tokens", "uint8", "U8", 1, {33}, 10));
    tensors.push_back(make("optim.step", "int64", "I64", 8, {}, 11));           // 0-D int64
  }
  StateDict state() {
    StateDict sd;
    for (Saved& s : tensors) add(sd, s);
    sd.add_value("step", int64_t{42});
    sd.add_value("model.config", std::string("{\"hidden\": 64}"));
    return sd;
  }
  const Saved& get(const std::string& name) const {
    for (const Saved& s : tensors)
      if (s.name == name) return s;
    FAIL("no tensor " << name);
    throw;
  }
  uint64_t bytes(const std::string& prefix = "") const {
    uint64_t n = 0;
    for (const Saved& s : tensors)
      if (s.name.rfind(prefix, 0) == 0) n += s.bytes.size();
    return n;
  }
};

// A store holding ModelState as "step-1", saved in small chunks so every
// tensor of some size spans several, some compressed.
struct ModelStore {
  TempDir dir{"export"};
  std::string path = dir / "store";
  ModelState model;
  explicit ModelStore(Compression c = Compression::kAuto) {
    Store store = Store::open(path);
    SaveOptions o;
    o.chunk_bytes = 1 << 10;
    o.compression = c;
    StateDict sd = model.state();
    save(sd, store, "step-1", o);
  }
};

// The box [offsets, offsets + sizes) of a dense row-major tensor, dense.
std::vector<std::byte> block(const Saved& s, const Shape& offsets, const Shape& sizes) {
  std::vector<std::byte> out(static_cast<size_t>(volume(sizes)) * s.elem);
  copy_region(Box{offsets, sizes}, StridedView::dense(Box::whole(s.shape), const_cast<std::byte*>(s.bytes.data())),
              StridedView::dense(Box{offsets, sizes}, out.data()), s.elem);
  return out;
}

}  // namespace

TEST_CASE("the reader written from the spec accepts what the reference writer wrote") {
  // safetensors 0.8 (Python): save({"a": torch.arange(3, dtype=torch.int16), "b": torch.ones(()),
  // "c": torch.zeros(2, dtype=torch.bfloat16)}, metadata={"format": "pt"}), byte for byte.
  const std::string hex =
      "c0000000000000007b225f5f6d657461646174615f5f223a7b22666f726d6174223a227074227d2c2262223a7b2264747970"
      "65223a22463332222c227368617065223a5b5d2c22646174615f6f666673657473223a5b302c345d7d2c2263223a7b226474"
      "797065223a2242463136222c227368617065223a5b325d2c22646174615f6f666673657473223a5b342c385d7d2c2261223a"
      "7b226474797065223a22493136222c227368617065223a5b335d2c22646174615f6f666673657473223a5b382c31345d7d7d"
      "0000803f00000000000001000200";
  std::string file;
  for (size_t i = 0; i < hex.size(); i += 2) file += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  TempDir dir("export-ref");
  std::ofstream(dir / "x.safetensors", std::ios::binary) << file;
  const SafetensorsFile f = read_safetensors(dir / "x.safetensors");
  CHECK(f.metadata.at("format") == "pt");
  CHECK(f.header_order == std::vector<std::string>{"b", "c", "a"});
  CHECK(f.tensors.at("a").dtype == "I16");
  CHECK(f.tensors.at("a").shape == Shape{3});
  CHECK(f.tensors.at("a").bytes == std::string("\0\0\1\0\2\0", 6));
  CHECK(f.tensors.at("b").shape.empty());
  CHECK(f.tensors.at("b").bytes == std::string("\0\0\x80\x3f", 4));
  CHECK(f.tensors.at("c").dtype == "BF16");
}

TEST_CASE("unsharded export: every dtype's bytes, 0-D and empty tensors, values left out") {
  for (Compression c : {Compression::kNone, Compression::kShuffleLz4}) {
    CAPTURE(static_cast<int>(c));
    ModelStore s(c);
    const std::string out = s.dir / "out";
    ExportResult r = export_safetensors(Store::open_read_only(s.path), "step-1", out);
    REQUIRE(r.files.size() == 1);
    CHECK(r.files[0].name == "model.safetensors");
    CHECK(r.index_file.empty());
    CHECK(r.tensors == s.model.tensors.size());
    CHECK(r.total_size == s.model.bytes());
    CHECK(r.values_skipped == 2);
    CHECK(r.skipped.empty());
    CHECK(r.chunks_read > s.model.tensors.size());  // small chunks: several per tensor
    CHECK(r.files[0].file_bytes == fs::file_size(out + "/model.safetensors"));
    const ExportDir d = read_export(out);
    CHECK(!d.sharded);
    CHECK(d.tensors.size() == s.model.tensors.size());
    for (const Saved& t : s.model.tensors) check_tensor(d, t.name, t);
    const SafetensorsFile f = read_safetensors(out + "/model.safetensors");
    CHECK(f.metadata.at("format") == "pt");
    // Largest elements first, then by name.
    CHECK(f.header_order.front() == "buffers.position_ids");
    CHECK(f.header_order.back() == "model.mask");
    CHECK(d.tensors.at("model.scale").shape.empty());
    CHECK(d.tensors.at("model.scale").bytes.size() == 4);
    CHECK(d.tensors.at("model.empty").bytes.empty());
  }
}

TEST_CASE("safetensors dtype names") {
  CHECK(safetensors_dtype("bfloat16") == "BF16");
  CHECK(safetensors_dtype("float32") == "F32");
  CHECK(safetensors_dtype("int64") == "I64");
  CHECK(safetensors_dtype("bool") == "BOOL");
  CHECK(safetensors_dtype("float8_e4m3fn") == "F8_E4M3");
  CHECK(safetensors_dtype("float8_e5m2") == "F8_E5M2");
  CHECK(safetensors_dtype("complex64") == "C64");
  CHECK(safetensors_dtype("uint16") == "U16");
  CHECK(!safetensors_dtype("complex128"));
  CHECK(!safetensors_dtype("complex32"));
  CHECK(!safetensors_dtype("qint8"));
  CHECK(!safetensors_dtype("float4_e2m1fn_x2"));
}

TEST_CASE("sharded export: shards under the limit, the index maps every tensor, total_size adds up") {
  ModelStore s;
  const std::string out = s.dir / "out";
  ExportOptions o;
  o.max_shard_bytes = 20'000;  // model.layers.0.mlp.up.weight (17160 bytes) fits; pairs do not
  o.threads = 3;
  ExportResult r = export_safetensors(Store::open_read_only(s.path), "step-1", out, o);
  CHECK(r.files.size() >= 3);
  CHECK(r.index_file == "model.safetensors.index.json");
  const ExportDir d = read_export(out);
  CHECK(d.sharded);
  CHECK(d.total_size == s.model.bytes());
  CHECK(d.tensors.size() == s.model.tensors.size());
  for (const Saved& t : s.model.tensors) check_tensor(d, t.name, t);
  for (size_t i = 0; i < r.files.size(); ++i) {
    CHECK(r.files[i].name == d.files[i]);
    CHECK(r.files[i].tensor_bytes <= o.max_shard_bytes);
    CHECK(r.files[i].file_bytes == fs::file_size(out + "/" + r.files[i].name));
  }
  // Greedy in name order: the shards hold consecutive names.
  std::vector<std::string> by_file;
  for (const auto& [name, file] : d.file_of) by_file.push_back(file);
  CHECK(std::is_sorted(by_file.begin(), by_file.end()));

  // A tensor larger than the limit gets a shard of its own.
  const std::string out2 = s.dir / "out2";
  o.max_shard_bytes = 1000;
  r = export_safetensors(Store::open_read_only(s.path), "step-1", out2, o);
  const ExportDir d2 = read_export(out2);
  for (const Saved& t : s.model.tensors) check_tensor(d2, t.name, t);
  for (const ExportedFile& f : r.files)
    if (f.tensor_bytes > 1000) CHECK(f.tensors.size() == 1);

  // Exactly at the limit: one file.
  const std::string out3 = s.dir / "out3";
  o.max_shard_bytes = s.model.bytes();
  r = export_safetensors(Store::open_read_only(s.path), "step-1", out3, o);
  CHECK(r.files.size() == 1);
  CHECK(!read_export(out3).sharded);
}

TEST_CASE("a prefix selects tensors; strip_prefix renames them") {
  ModelStore s;
  ExportOptions o;
  o.prefix = "model.layers.0.";
  ExportResult r = export_safetensors(Store::open_read_only(s.path), "step-1", s.dir / "a", o);
  CHECK(r.tensors == 3);
  CHECK(r.total_size == s.model.bytes("model.layers.0."));
  CHECK(r.values_skipped == 0);
  ExportDir d = read_export(s.dir / "a");
  CHECK(d.tensors.size() == 3);
  for (const char* n : {"model.layers.0.mlp.up.weight", "model.layers.0.mlp.up.bias", "model.layers.0.norm.weight"})
    check_tensor(d, n, s.model.get(n));

  o.prefix = "model.";
  o.strip_prefix = true;
  r = export_safetensors(Store::open_read_only(s.path), "step-1", s.dir / "b", o);
  CHECK(r.values_skipped == 1);  // model.config
  d = read_export(s.dir / "b");
  CHECK(d.tensors.size() == 8);
  check_tensor(d, "embed.weight", s.model.get("model.embed.weight"));
  check_tensor(d, "layers.1.attn.qkv", s.model.get("model.layers.1.attn.qkv"));
  check_tensor(d, "scale", s.model.get("model.scale"));
  CHECK(!d.tensors.count("model.embed.weight"));

  o.prefix = "nothing.";
  o.strip_prefix = false;
  const std::string err = message_of([&] { export_safetensors(Store::open_read_only(s.path), "step-1", s.dir / "c", o); });
  CHECK(contains_text(err, "no tensors starting with 'nothing.'"));
  CHECK_THROWS_AS(export_safetensors(Store::open_read_only(s.path), "step-1", s.dir / "c", o), NotFoundError);
  CHECK(!fs::exists(s.dir / "c/model.safetensors"));
}

TEST_CASE("a checkpoint saved as shards of 4 ranks exports as one consolidated tensor per name") {
  TempDir dir("export-dist");
  const std::string path = dir / "store";
  Saved w = make("w", "float32", "F32", 4, {150, 90}, 21);         // 2x2 blocks, uneven
  Saved e = make("e", "bfloat16", "BF16", 2, {6, 100, 32}, 22);    // split along dim 1
  Saved ids = make("ids", "int64", "I64", 8, {4, 333}, 23);        // column shards
  Saved rep = make("norm", "float32", "F32", 4, {77}, 24);         // replicated on every rank
  Saved s0 = make("scalar", "float32", "F32", 4, {}, 25);          // 0-D, rank 0 only
  SaveOptions o;
  o.chunk_bytes = 2 << 10;  // cells smaller than the shards, and shards cutting cells
  auto errors = run_ranks(4, [&](int64_t r, ControlPlane& plane) {
    StateDict sd;
    const int64_t wr = r / 2, wc = r % 2;
    const Shape w_off = {wr * 70, wc * 40}, w_size = {wr ? 80 : 70, wc ? 50 : 40};
    auto wb = block(w, w_off, w_size);
    sd.add_tensor("w", TensorView::contiguous("float32", 4, wb.data(), w_size).as_shard(w.shape, w_off));
    const int64_t e0 = r * 25;
    auto eb = block(e, {0, e0, 0}, {6, 25, 32});
    sd.add_tensor("e", TensorView::contiguous("bfloat16", 2, eb.data(), {6, 25, 32}).as_shard(e.shape, {0, e0, 0}));
    const int64_t c0 = r * 84, cn = r == 3 ? 333 - 3 * 84 : 84;
    auto ib = block(ids, {0, c0}, {4, cn});
    sd.add_tensor("ids", TensorView::contiguous("int64", 8, ib.data(), {4, cn}).as_shard(ids.shape, {0, c0}));
    sd.add_tensor("norm", TensorView::contiguous("float32", 4, rep.bytes.data(), rep.shape).as_replica(r, 4));
    if (r == 0) sd.add_tensor("scalar", TensorView::contiguous("float32", 4, s0.bytes.data(), {}));
    sd.add_value("step", int64_t{7});
    Store store = Store::open(path);
    SaveOptions mine = o;
    mine.plane = &plane;
    save(sd, store, "step-7", mine);
    // The shard views keep pointers into wb, eb, ib until save returns.
  });
  for (const auto& err : errors) CHECK(err == "");
  const Store store = Store::open_read_only(path);
  CHECK(store.checkpoint("step-7").world_size == 4);
  ExportResult r = export_safetensors(store, "step-7", dir / "out");
  const ExportDir d = read_export(dir / "out");
  CHECK(d.tensors.size() == 5);
  for (const Saved* t : {&w, &e, &ids, &rep, &s0}) check_tensor(d, t->name, *t);
  CHECK(r.chunks_read > 20);

  // The same, sharded, with one thread.
  ExportOptions eo;
  eo.max_shard_bytes = 30'000;
  eo.threads = 1;
  export_safetensors(store, "step-7", dir / "out-sharded", eo);
  const ExportDir ds = read_export(dir / "out-sharded");
  CHECK(ds.sharded);
  for (const Saved* t : {&w, &e, &ids, &rep, &s0}) check_tensor(ds, t->name, *t);
}

TEST_CASE("unsupported dtypes: an error naming the tensor and dtype, or skipped") {
  TempDir dir("export-dtype");
  Saved ok = make("a.weight", "float32", "F32", 4, {10}, 31);
  Saved bad = make("b.complex", "complex128", "", 16, {3}, 32);
  Saved fp8 = make("c.fp8", "float8_e4m3fn", "F8_E4M3", 1, {9}, 33);
  Saved c64 = make("d.c64", "complex64", "C64", 8, {2, 2}, 34);
  {
    Store store = Store::open(dir / "store");
    StateDict sd;
    for (Saved* t : {&ok, &bad, &fp8, &c64}) add(sd, *t);
    save(sd, store, "s");
  }
  const Store store = Store::open_read_only(dir / "store");
  const std::string err = message_of([&] { export_safetensors(store, "s", dir / "out"); });
  CHECK(contains_text(err, "tensor 'b.complex'"));
  CHECK(contains_text(err, "complex128"));
  CHECK(contains_text(err, "checkpoint 's'"));
  CHECK_THROWS_AS(export_safetensors(store, "s", dir / "out"), InvalidArgument);
  CHECK((!fs::exists(dir / "out") || fs::is_empty(dir / "out")));

  ExportOptions o;
  o.skip_unsupported = true;
  ExportResult r = export_safetensors(store, "s", dir / "out", o);
  REQUIRE(r.skipped.size() == 1);
  CHECK(r.skipped[0] == "b.complex (complex128)");
  const ExportDir d = read_export(dir / "out");
  CHECK(d.tensors.size() == 3);
  for (const Saved* t : {&ok, &fp8, &c64}) check_tensor(d, t->name, *t);

  o.prefix = "b.";  // only unsupported tensors selected: nothing to write
  CHECK_THROWS_AS(export_safetensors(store, "s", dir / "out-b", o), InvalidArgument);
}

TEST_CASE("names that need escaping in the JSON header") {
  TempDir dir("export-names");
  Saved a = make("w\"quoted\"\\back", "float32", "F32", 4, {3}, 41);
  Saved b = make("ünïcödé.wëight", "bfloat16", "BF16", 2, {4}, 42);
  Saved c = make("tab\there\nnewline", "int32", "I32", 4, {2}, 43);
  {
    Store store = Store::open(dir / "store");
    StateDict sd;
    for (Saved* t : {&a, &b, &c}) add(sd, *t);
    save(sd, store, "s");
  }
  export_safetensors(Store::open_read_only(dir / "store"), "s", dir / "out");
  const ExportDir d = read_export(dir / "out");
  for (const Saved* t : {&a, &b, &c}) check_tensor(d, t->name, *t);
  ExportOptions o;
  o.max_shard_bytes = 8;
  export_safetensors(Store::open_read_only(dir / "store"), "s", dir / "sharded", o);
  const ExportDir ds = read_export(dir / "sharded");
  for (const Saved* t : {&a, &b, &c}) check_tensor(ds, t->name, *t);

  // Names a safetensors header cannot hold.
  Saved meta = make("__metadata__", "float32", "F32", 4, {1}, 44);
  Saved latin1 = make(std::string("caf\xe9"), "float32", "F32", 4, {1}, 45);
  {
    Store store = Store::open(dir / "store");
    StateDict sd;
    add(sd, meta);
    save(sd, store, "meta");
    StateDict sd2;
    add(sd2, latin1);
    save(sd2, store, "latin1");
  }
  const Store store = Store::open_read_only(dir / "store");
  CHECK(contains_text(message_of([&] { export_safetensors(store, "meta", dir / "m"); }), "reserved"));
  CHECK(contains_text(message_of([&] { export_safetensors(store, "latin1", dir / "l"); }), "UTF-8"));
  ExportOptions strip;
  strip.prefix = "__metadata__";
  strip.strip_prefix = true;
  CHECK(contains_text(message_of([&] { export_safetensors(store, "meta", dir / "m", strip); }), "prefix"));
}

TEST_CASE("an earlier export is refused, or replaced with overwrite (stale shards removed)") {
  ModelStore s;
  const std::string out = s.dir / "out";
  const Store store = Store::open_read_only(s.path);
  ExportOptions sharded;
  sharded.max_shard_bytes = 20'000;
  const ExportResult first = export_safetensors(store, "step-1", out, sharded);
  REQUIRE(first.files.size() >= 3);
  std::ofstream(out + "/README.md") << "keep me\n";
  std::ofstream(out + "/.model-00002-of-00003.safetensors.tmp-99999") << "left by a killed export";

  const std::string err = message_of([&] { export_safetensors(store, "step-1", out); });
  CHECK(contains_text(err, "earlier export"));
  CHECK(contains_text(err, "model-00001-of-"));
  CHECK_THROWS_AS(export_safetensors(store, "step-1", out), AlreadyExistsError);

  ExportOptions o;
  o.overwrite = true;
  const ExportResult r = export_safetensors(store, "step-1", out, o);
  CHECK(r.removed.size() == first.files.size() + 2);  // every shard, the index and the temporary file
  CHECK(fs::exists(out + "/README.md"));
  fs::remove(out + "/README.md");
  const ExportDir d = read_export(out);
  CHECK(!d.sharded);
  for (const Saved& t : s.model.tensors) check_tensor(d, t.name, t);

  // And back to sharded: model.safetensors goes.
  sharded.overwrite = true;
  const ExportResult again = export_safetensors(store, "step-1", out, sharded);
  CHECK(again.removed == std::vector<std::string>{"model.safetensors"});
  CHECK(read_export(out).sharded);
}

TEST_CASE("errors: unknown checkpoint; a damaged chunk fails the export and leaves no file") {
  ModelStore s(Compression::kNone);
  const Store store = Store::open_read_only(s.path);
  const std::string err = message_of([&] { export_safetensors(store, "step-404", s.dir / "out"); });
  CHECK(contains_text(err, "'step-404'"));
  CHECK_THROWS_AS(export_safetensors(store, "step-404", s.dir / "out"), NotFoundError);
  ExportOptions zero;
  zero.max_shard_bytes = 0;
  CHECK_THROWS_AS(export_safetensors(store, "step-1", s.dir / "out", zero), InvalidArgument);

  // Flip one byte of stored chunk data (packs start with chunk data).
  for (const auto& e : fs::directory_iterator(s.path + "/packs")) {
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(100);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5A);
    f.seekp(100);
    f.write(&c, 1);
  }
  for (uint64_t limit : {uint64_t{5} << 30, uint64_t{1000}}) {
    ExportOptions o;
    o.max_shard_bytes = limit;
    const std::string out = s.dir / ("out-" + std::to_string(limit));
    std::string damaged;
    try {
      export_safetensors(store, "step-1", out, o);
    } catch (const CorruptionError& e) {
      damaged = e.what();
    }
    CHECK(contains_text(damaged, "checkpoint 'step-1', tensor '"));
    CHECK(contains_text(damaged, "chunk "));
    CHECK(contains_text(damaged, "pack '"));
    CHECK(fs::is_empty(out));  // no output, no temporary file
  }
}

TEST_CASE("the reference implementation reads the output (TESSERA_PYTHON with safetensors and torch)" *
          doctest::skip(std::getenv("TESSERA_PYTHON") == nullptr)) {
  ModelStore s;
  const Store store = Store::open_read_only(s.path);
  export_safetensors(store, "step-1", s.dir / "single");
  ExportOptions o;
  o.max_shard_bytes = 20'000;
  export_safetensors(store, "step-1", s.dir / "sharded", o);
  const std::string script = R"PY(
import json, os, sys, torch
from safetensors import safe_open
from safetensors.torch import load_file
d = sys.argv[1]
index = os.path.join(d, "model.safetensors.index.json")
files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
for f in files:
    with safe_open(os.path.join(d, f), framework="pt") as h:
        assert h.metadata()["format"] == "pt"
    for name, t in sorted(load_file(os.path.join(d, f)).items()):
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        print(name, str(t.dtype).replace("torch.", ""), list(t.shape), raw.hex())
)PY";
  std::ofstream(s.dir / "read.py") << script;
  for (const char* sub : {"single", "sharded"}) {
    CAPTURE(sub);
    const std::string cmd = std::string(std::getenv("TESSERA_PYTHON")) + " " + (s.dir / "read.py") + " " +
                            (s.dir / sub) + " > " + (s.dir / "py.out");
    REQUIRE(std::system(cmd.c_str()) == 0);
    std::map<std::string, std::string> lines;
    std::istringstream in(read_all(s.dir / "py.out"));
    for (std::string line; std::getline(in, line);) lines[line.substr(0, line.find(' '))] = line;
    CHECK(lines.size() == s.model.tensors.size());
    for (const Saved& t : s.model.tensors) {
      std::string shape = "[";
      for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(t.shape[i]);
      std::string hex;
      char buf[3];
      for (std::byte b : t.bytes) {
        std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned>(b));
        hex += buf;
      }
      CHECK(lines[t.name] == t.name + " " + t.dtype + " " + shape + "] " + hex);
    }
  }
}
