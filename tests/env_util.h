// Helpers for the suites that drive an Env (lib/src/io/env.h) directly:
// whole files in and out, and a directory's names.
#pragma once

#include <set>
#include <string>

#include "io/env.h"

namespace tessera::test {

// The whole of `path`.
inline std::string read_all(Env& env, const std::string& path) {
  auto f = env.open_file(path);
  std::string bytes(f->size(), '\0');
  f->read_at(0, bytes.size(), bytes.data());
  return bytes;
}

// Creates `path` holding `bytes`, synced when `sync`, and closes it.
inline void write_file(Env& env, const std::string& path, const std::string& bytes, bool sync) {
  auto f = env.create_file(path);
  f->append(bytes.data(), bytes.size());
  if (sync) f->sync();
  f->close();
}

// The names in `dir`.
inline std::set<std::string> names_in(Env& env, const std::string& dir) {
  std::set<std::string> out;
  for (const DirEntry& e : env.list_dir(dir)) out.insert(e.name);
  return out;
}

}  // namespace tessera::test
