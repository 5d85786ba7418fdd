// Helpers shared by the test suites: temporary directories, random data,
// errors, files, a recording tensor source, and ranks on threads.
#pragma once

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tessera/distributed.h"
#include "tessera/tensor_source.h"

namespace tessera::test {

// A fresh directory under $TMPDIR (or /tmp), removed when the object dies.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "t") {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base ? base : "/tmp") + "/tessera-" + tag + "-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    path_ = ::mkdtemp(buf.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& child) const { return path_ + "/" + child; }

 private:
  std::string path_;
};

inline std::vector<std::byte> random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::byte> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>(rng() & 0xff);
  return out;
}

// Bytes that compress: bf16-like values with a narrow exponent range.
inline std::vector<std::byte> smooth_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<std::byte> out(n);
  for (size_t i = 0; i + 1 < n; i += 2) {
    float f = dist(rng);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    out[i] = static_cast<std::byte>((bits >> 16) & 0xff);
    out[i + 1] = static_cast<std::byte>(bits >> 24);
  }
  return out;
}

// The message of the exception `fn` throws, or "" when it returns.
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// Runs `body` in a forked child whose files may not grow past `max_file_bytes`
// (RLIMIT_FSIZE: writes fail with EFBIG, as a full disk fails them with
// ENOSPC) and returns the text it returned; "threw: <what>" when it threw.
inline std::string with_file_size_limit(uint64_t max_file_bytes, const std::function<std::string()>& body) {
  int out[2];
  if (pipe(out) != 0) return "pipe failed";
  const pid_t pid = fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    close(out[0]);
    signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{max_file_bytes, max_file_bytes};
    setrlimit(RLIMIT_FSIZE, &limit);
    std::string text;
    try {
      text = body();
    } catch (const std::exception& e) {
      text = std::string("threw: ") + e.what();
    }
    (void)!write(out[1], text.data(), text.size());
    _exit(0);
  }
  close(out[1]);
  std::string text;
  char buf[512];
  for (ssize_t n; (n = read(out[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status)) text += " [the child died]";
  return text;
}

inline bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// ---- files ------------------------------------------------------------------

// XORs the byte at `offset` of `file` with 0x5a (damage that any checksum
// sees); throws when the file cannot be read or written there.
inline void flip_byte(const std::filesystem::path& file, uint64_t offset) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  const auto at = static_cast<std::streamoff>(offset);
  char c = 0;
  if (!f.seekg(at) || !f.get(c))
    throw std::runtime_error("flip_byte: cannot read byte " + std::to_string(offset) + " of " + file.string());
  if (!f.seekp(at) || !f.put(static_cast<char>(c ^ 0x5a)) || !f.flush())
    throw std::runtime_error("flip_byte: cannot write byte " + std::to_string(offset) + " of " + file.string());
}

// The names of the entries in `dir`, sorted; none when `dir` does not exist.
inline std::set<std::string> files_in(const std::filesystem::path& dir) {
  std::set<std::string> out;
  if (!std::filesystem::exists(dir)) return out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

// The names in STORE/<sub>, a directory every store has (throws when it is missing).
inline std::set<std::string> files_in(const std::string& store, const std::string& sub) {
  const std::filesystem::path dir = std::filesystem::path(store) / sub;
  if (!std::filesystem::is_directory(dir)) throw std::runtime_error(dir.string() + " is not a directory");
  return files_in(dir);
}

// Threads of this process now.
inline size_t live_threads() {
  size_t n = 0;
  for ([[maybe_unused]] auto& t : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// ---- tensor sources ---------------------------------------------------------

// A TensorSource that records its calls ("host_view_for_save", "saved",
// "host_target_for_load <dtype>", "loaded" or "loaded cast") and runs the
// matching function where one is set. Staged unless `is_staged` is cleared;
// casts only with `casts`. Without a function, the views are `view`.
class TestSource : public TensorSource {
 public:
  explicit TestSource(TensorView v = {}) : view(std::move(v)) {}

  TensorView view;
  bool is_staged = true;
  bool casts = false;
  std::function<TensorView()> on_save;
  std::function<void()> on_saved;
  std::function<TensorView(const std::string& saved_dtype)> on_load;
  std::function<void(bool cast)> on_loaded;

  // The calls so far, in order.
  std::vector<std::string> calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }

  bool staged() const override { return is_staged; }
  bool can_cast() const override { return casts; }
  TensorView host_view_for_save() override {
    record("host_view_for_save");
    return on_save ? on_save() : view;
  }
  void saved() override {
    record("saved");
    if (on_saved) on_saved();
  }
  TensorView host_target_for_load(const std::string& saved_dtype) override {
    record("host_target_for_load " + saved_dtype);
    return on_load ? on_load(saved_dtype) : view;
  }
  void loaded(bool cast) override {
    record(cast ? "loaded cast" : "loaded");
    if (on_loaded) on_loaded(cast);
  }

 private:
  void record(std::string call) {
    std::lock_guard lock(mu_);
    calls_.push_back(std::move(call));
  }
  mutable std::mutex mu_;
  std::vector<std::string> calls_;
};

// The entry of `view` with `source` behind it.
inline TensorEntry sourced_entry(TensorView view, std::shared_ptr<TensorSource> source) {
  TensorEntry e;
  e.view = std::move(view);
  e.source = std::move(source);
  return e;
}

// ---- ranks on threads -------------------------------------------------------

// Runs fn(rank, *planes[rank]) on one thread per plane; returns what each
// rank threw (null if nothing).
template <class Plane>
std::vector<std::exception_ptr> caught_on(const std::vector<Plane>& planes,
                                          const std::function<void(int64_t, ControlPlane&)>& fn) {
  const int64_t world = static_cast<int64_t>(planes.size());
  std::vector<std::exception_ptr> caught(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int64_t r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        fn(r, *planes[static_cast<size_t>(r)]);
      } catch (...) {
        caught[static_cast<size_t>(r)] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  return caught;
}

// caught_on over `world` in-process control planes.
inline std::vector<std::exception_ptr> caught_ranks(int64_t world,
                                                    const std::function<void(int64_t, ControlPlane&)>& fn) {
  return caught_on(in_process_control_planes(world), fn);
}

// The message of what `p` holds ("" for null).
inline std::string message_of(const std::exception_ptr& p) {
  if (!p) return "";
  try {
    std::rethrow_exception(p);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "(not a std::exception)";
  }
}

// As caught_on, each rank's error message ("" if none).
template <class Plane>
std::vector<std::string> run_on(const std::vector<Plane>& planes,
                                const std::function<void(int64_t, ControlPlane&)>& fn) {
  std::vector<std::string> errors;
  for (const auto& p : caught_on(planes, fn)) errors.push_back(message_of(p));
  return errors;
}

// Runs fn(rank, plane) on `world` threads over in-process control planes;
// returns each rank's error message ("" if none).
inline std::vector<std::string> run_ranks(int64_t world, const std::function<void(int64_t, ControlPlane&)>& fn) {
  return run_on(in_process_control_planes(world), fn);
}

}  // namespace tessera::test
