// What a Store holds, and StoreAccess, the library's one way to it (Store has
// no public accessor). Internal: api/, engine/, dist/ and white-box tests.
#pragma once

#include <mutex>
#include <string>

#include "catalog/catalog.h"
#include "tessera/store.h"

namespace tessera {

struct Store::Impl {
  Impl(std::string p, bool ro, catalog::Catalog c)
      : path(std::move(p)), read_only(ro), catalog(std::move(c)), env(catalog.env()) {}

  std::string path;
  bool read_only = false;
  catalog::Catalog catalog;
  Env& env;  // the catalog's: every file of the store goes through it
  std::mutex mu;  // serializes catalog use across threads of this process

  std::string catalog_path() const { return path + "/catalog.db"; }
  std::string packs_dir() const { return path + "/packs"; }
  std::string tmp_dir() const { return path + "/tmp"; }
  std::string pack_path(const std::string& name) const { return packs_dir() + "/" + name; }
};

// The way from a Store to what it holds: the library's own code and
// white-box tests only (the public Store has no accessor).
struct StoreAccess {
  static Store::Impl& impl(const Store& store) { return *store.impl_; }
};

// Throws NotFoundError naming the checkpoint and store.
catalog::CheckpointInfo require_checkpoint(Store::Impl& store, const std::string& name);

}  // namespace tessera
