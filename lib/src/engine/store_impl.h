// What a Store holds. The engine's and dist/'s functions take a Store::Impl&;
// api/ gets it from a public Store through StoreAccess (api/store_access.h).
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

}  // namespace tessera

namespace tessera::engine {

// Throws NotFoundError naming the checkpoint and store.
catalog::CheckpointInfo require_checkpoint(Store::Impl& store, const std::string& name);

}  // namespace tessera::engine
