// Pack readers opened once each and shared by the threads of one load,
// export or verify.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "engine/store_impl.h"
#include "pack/pack_reader.h"

namespace tessera {

class PackCache {
 public:
  explicit PackCache(const Store::Impl& store) : store_(store) {}

  // Throws pack::PackError when the pack cannot be opened.
  const pack::PackReader& get(const std::string& name) {
    std::lock_guard lock(mu_);
    auto& r = readers_[name];
    if (!r) r = std::make_unique<pack::PackReader>(store_.env, store_.pack_path(name));
    return *r;
  }

 private:
  const Store::Impl& store_;
  std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<pack::PackReader>> readers_;
};

}  // namespace tessera
