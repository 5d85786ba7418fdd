#include "tessera/store.h"

#include "engine/store_impl.h"
#include "io/io_error.h"
#include "tessera/error.h"

namespace tessera {
namespace {

CheckpointSummary summarize(const catalog::CheckpointInfo& c) {
  CheckpointSummary s;
  s.name = c.name;
  s.created_at = c.created_at;
  s.world_size = c.world_size;
  s.tensors = c.tensor_count;
  s.values = c.value_count;
  s.logical_bytes = c.logical_bytes;
  s.stored_bytes = c.stored_bytes;
  s.added_bytes = c.added_bytes;
  s.metadata = c.metadata;
  return s;
}

}  // namespace

Store Store::open(const std::string& path, const StoreOptions& options) {
  using catalog::Catalog;
  const std::string db = path + "/catalog.db";
  const std::shared_ptr<Env> env = options.env ? options.env : posix_env();
  bool exists = false;
  try {
    exists = env->exists(db);
  } catch (const io::IoError& e) {
    throw StoreError(std::string("store '") + path + "': " + e.what());
  }
  if (!exists && (options.read_only || !options.create_if_missing))
    throw StoreError("'" + path + "' is not a tessera store (no catalog.db)");
  try {
    if (!options.read_only) {
      env->make_dirs(path + "/packs");
      env->make_dirs(path + "/tmp");
    }
    auto mode = options.read_only ? Catalog::Mode::kReadOnly : Catalog::Mode::kReadWrite;
    auto impl = std::make_shared<Impl>(path, options.read_only, Catalog::open(db, mode, !exists, env));
    return Store(std::move(impl));
  } catch (const catalog::CatalogError& e) {
    throw StoreError(e.what());
  } catch (const io::IoError& e) {
    throw StoreError(std::string("store '") + path + "': " + e.what());
  }
}

Store Store::open_read_only(const std::string& path, std::shared_ptr<Env> env) {
  StoreOptions o;
  o.read_only = true;
  o.env = std::move(env);
  return open(path, o);
}

const std::string& Store::path() const { return impl_->path; }
bool Store::read_only() const { return impl_->read_only; }

std::vector<CheckpointSummary> Store::checkpoints() const {
  std::lock_guard lock(impl_->mu);
  std::vector<CheckpointSummary> out;
  for (const auto& c : impl_->catalog.list_checkpoints()) out.push_back(summarize(c));
  return out;
}

CheckpointSummary Store::checkpoint(const std::string& name) const {
  std::lock_guard lock(impl_->mu);
  return summarize(engine::require_checkpoint(*impl_, name));
}

}  // namespace tessera
