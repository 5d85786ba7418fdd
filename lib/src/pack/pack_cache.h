// Pack readers opened once each and shared by the threads of one load,
// export, diff, verify or gc.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "io/env.h"
#include "pack/pack_reader.h"

namespace tessera::pack {

class PackCache {
 public:
  // Packs are the files of `packs_dir` (a store's packs/). `env` must outlive the cache.
  PackCache(Env& env, std::string packs_dir) : env_(env), packs_dir_(std::move(packs_dir)) {}

  // The reader of pack `name`, opened on first use; it stays valid until
  // close(name) or the cache's end. Throws PackError when the pack cannot be
  // opened (and tries again on the next call). Safe to call from several threads.
  const PackReader& get(const std::string& name) {
    std::lock_guard lock(mu_);
    auto& r = readers_[name];
    if (!r) r = std::make_unique<PackReader>(env_, packs_dir_ + "/" + name);
    return *r;
  }

  // Closes pack `name`'s file (one that will not be read again), if open.
  void close(const std::string& name) {
    std::lock_guard lock(mu_);
    readers_.erase(name);
  }

 private:
  Env& env_;
  const std::string packs_dir_;
  std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<PackReader>> readers_;
};

}  // namespace tessera::pack
