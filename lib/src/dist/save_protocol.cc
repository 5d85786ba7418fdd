#include "dist/save_protocol.h"

#include <cstdio>
#include <random>

namespace tessera::dist {

std::string new_token() {
  std::random_device rd;
  const uint64_t x = (uint64_t{rd()} << 32) ^ rd();
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(x));
  return buf;
}

std::string Save::seconds(std::chrono::milliseconds limit) {
  char s[32];
  std::snprintf(s, sizeof s, "%.1f", static_cast<double>(limit.count()) / 1000.0);
  return s;
}

std::string Save::coordinator_silent(std::chrono::milliseconds waited) const {
  return failed + "the coordinator (rank 0) did not report within " + seconds(waited) + " s (did it die?)";
}

std::string Save::aborted(const std::string& abort) const {
  return failed + "rank " + abort.substr(std::string(kAbortPrefix).size()) +
         " gave up waiting for the coordinator (rank 0) and aborted the save after " + seconds(2 * timeout) +
         " s (twice the timeout)";
}

void Save::leave(bool succeeded) {
  if (plane.add(key("left"), 1) < world) return;
  for (const char* k : {"outcome", "decision", "left"}) plane.delete_key(key(k));
  if (!succeeded)
    for (const char* k : {"ready", "arrived", "all_in"}) plane.delete_key(key(k));
}

void write_report(Env& env, const std::string& path, const std::string& bytes) {
  const std::string part = path + ".part";
  try {
    auto f = env.create_file(part);
    f->append(bytes.data(), bytes.size());
    f->close();
    env.rename(part, path);
  } catch (...) {
    env.remove_file(part);
    throw;
  }
}

std::string read_report(Env& env, const std::string& path) {
  auto f = env.open_file(path);
  std::string bytes(f->size(), '\0');
  f->read_at(0, bytes.size(), bytes.data());
  return bytes;
}

}  // namespace tessera::dist
