// Garbage collection: plan_gc() and run_gc(). The order of operations and
// why it is crash-safe are described in tessera/history.h and in
// lib/src/pack/PACK_FORMAT.md ("Garbage collection").
#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "catalog/maintenance.h"
#include "engine/chunk_reader.h"
#include "engine/maintenance/history_hooks.h"
#include "engine/store_impl.h"
#include "io/io_error.h"
#include "io/progress_meter.h"
#include "pack/pack_cache.h"
#include "pack/pack_writer.h"
#include "tessera/error.h"
#include "tessera/history.h"

namespace tessera {
namespace {

using Kind = catalog::Transaction::Kind;

// Whether the file's modification time is at least `grace` ago; nullopt when
// it is gone.
std::optional<bool> old_enough(Env& env, const std::string& path, std::chrono::seconds grace) {
  const auto st = env.status(path);
  if (!st) return std::nullopt;
  return std::chrono::system_clock::now() - st->modified >= grace;
}

uint64_t size_of(Env& env, const std::string& path) {
  const auto st = env.status(path);
  return st ? st->size : 0;
}

struct DirFile {
  std::string name;
  uint64_t size = 0;
  bool old = false;
};

// Regular files directly in `dir` (ending in `suffix` when it is not empty).
std::vector<DirFile> list_files(Env& env, const std::string& dir, const std::string& suffix,
                                std::chrono::seconds grace) {
  std::vector<DirFile> out;
  try {
    for (const DirEntry& e : env.list_dir(dir)) {
      // Not followed: a symbolic link (to a file outside the store, or another
      // store's pack) is never counted or deleted.
      if (e.type != FileType::kRegular) continue;
      const std::string& name = e.name;
      if (!suffix.empty() &&
          (name.size() < suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0))
        continue;
      const std::string path = dir + "/" + name;
      const auto old = old_enough(env, path, grace);
      if (!old) continue;  // removed meanwhile
      out.push_back(DirFile{name, size_of(env, path), *old});
    }
  } catch (const io::IoError& e) {
    throw StoreError(e.what());
  }
  std::sort(out.begin(), out.end(), [](const DirFile& a, const DirFile& b) { return a.name < b.name; });
  return out;
}

// The live chunks of one pack being rewritten, and where their copies went.
struct Rewrite {
  std::string old_pack;
  std::vector<std::pair<ChunkId, size_t>> copies;  // chunk, index into the new packs
  std::string abandoned;                            // why, when the copy failed
};

// Step 1: copies the live chunks of the plan's rewrite packs, stored bytes as
// they are, into new packs that are durable when this returns.
class Copier {
 public:
  Copier(Store::Impl& store, const GcOptions& options, io::ProgressMeter& meter)
      : store_(store), options_(options), meter_(meter), packs_(store.env, store.packs_dir()) {}

  void copy_pack(Rewrite& rw, const std::vector<pack::ChunkEntry>& live) {
    const pack::PackReader* reader = nullptr;
    try {
      reader = &packs_.get(rw.old_pack);
    } catch (const std::exception& e) {
      rw.abandoned = e.what();
      return;
    }
    for (const pack::ChunkEntry& e : live) {
      std::vector<std::byte> stored;
      try {
        stored = read_stored_chunk(*reader, rw.old_pack, e);
      } catch (const CorruptionError& ex) {
        rw.abandoned = ex.what();  // copies made so far become dead bytes of the new pack
        break;
      }
      if (!writer_) writer_.emplace(store_.env, store_.tmp_dir(), store_.packs_dir());
      writer_->add(e, stored.data());
      rw.copies.emplace_back(e.id, done_.size());
      meter_.add(e.stored_len);
      history_step("gc: copied chunk");
      if (writer_->bytes() >= options_.pack_bytes) finish_pack();
    }
    packs_.close(rw.old_pack);  // each pack is copied once: its file need not stay open
  }

  // Finishes the pack in progress; returns every new pack (all durable).
  const std::vector<pack::PackInfo>& finish() {
    finish_pack();
    return done_;
  }

  // The catalog now names the new packs: they are no longer this object's to remove.
  void committed() { committed_ = true; }

  // Unless committed(): the pack in progress removes its temp file, and the
  // finished ones are removed here, unless the catalog names one (a copy
  // can be byte-identical to a pack the catalog already has).
  ~Copier() {
    writer_.reset();
    if (committed_) return;
    for (const auto& p : done_) {
      try {
        std::lock_guard lock(store_.mu);
        if (!catalog::pack_known(store_.catalog, p.name)) store_.env.remove_file(store_.pack_path(p.name));
      } catch (...) {
      }
    }
  }

 private:
  void finish_pack() {
    if (writer_ && writer_->chunk_count() > 0) {
      done_.push_back(writer_->finish());
      history_step("gc: new pack durable");
    }
    writer_.reset();
  }

  Store::Impl& store_;
  const GcOptions& options_;
  io::ProgressMeter& meter_;
  pack::PackCache packs_;
  std::optional<pack::PackWriter> writer_;
  std::vector<pack::PackInfo> done_;
  bool committed_ = false;
};

// Whether the pack's live fraction is below `rewrite_below`.
bool below(const catalog::PackUsage& u, double rewrite_below) {
  return static_cast<double>(u.live_bytes) < rewrite_below * static_cast<double>(u.size_bytes);
}

std::string percent_live(const catalog::PackUsage& u) {
  return std::to_string(u.size_bytes ? 100 * u.live_bytes / u.size_bytes : 0) + "%";
}

GcFile file_of(const catalog::PackUsage& u) {
  return GcFile{u.name, static_cast<uint64_t>(u.size_bytes), static_cast<uint64_t>(u.live_bytes),
                static_cast<uint64_t>(u.live_chunks)};
}

// Step 2, under the write lock: point the copied chunks at the new packs,
// drop orphan chunk rows and the rows of packs left empty. Returns the pack
// names whose rows were dropped: their files may go once this has committed.
std::vector<std::string> commit_catalog_changes(catalog::Catalog& cat, const GcPlan& plan, std::vector<Rewrite>& rewrites,
                                                const std::vector<pack::PackInfo>& new_packs, GcResult& result) {
  std::vector<int64_t> new_ids;
  std::vector<std::map<ChunkId, uint64_t>> new_offsets;
  std::set<std::string> known_before;  // a copy identical to a pack the catalog has
  for (const auto& p : new_packs) {
    if (catalog::pack_known(cat, p.name)) known_before.insert(p.name);
    new_ids.push_back(catalog::upsert_pack(cat, p.name, p.size));
    auto& offsets = new_offsets.emplace_back();
    for (const auto& e : p.chunks) offsets[e.id] = e.offset;
  }
  // Liveness as of now: this transaction holds the write lock, so no commit
  // can reference more chunks before it ends.
  std::set<std::string> rewriting;
  for (const Rewrite& rw : rewrites)
    if (rw.abandoned.empty()) rewriting.insert(rw.old_pack);
  const catalog::ChunkUsage usage = catalog::chunk_usage(cat, rewriting);
  for (Rewrite& rw : rewrites) {
    if (!rw.abandoned.empty()) {
      result.skipped.push_back("pack " + rw.old_pack + " not rewritten: " + rw.abandoned);
      continue;
    }
    const catalog::PackUsage* old = usage.pack(rw.old_pack);
    if (!old) {
      result.skipped.push_back("pack " + rw.old_pack + " not rewritten: it left the catalog meanwhile");
      continue;
    }
    std::set<ChunkId> copied;
    for (const auto& [id, _] : rw.copies) copied.insert(id);
    const auto& live_now = usage.live_entries.at(rw.old_pack);
    if (std::any_of(live_now.begin(), live_now.end(), [&](const pack::ChunkEntry& e) { return !copied.count(e.id); })) {
      result.skipped.push_back("pack " + rw.old_pack +
                               " not rewritten: a checkpoint committed since planning references more of it");
      continue;
    }
    for (const auto& [id, index] : rw.copies)
      if (catalog::move_chunk(cat, id, old->id, new_ids[index], new_offsets[index].at(id))) ++result.chunks_moved;
    result.rewritten_packs.push_back(rw.old_pack);
  }
  result.chunks_dropped = static_cast<uint64_t>(catalog::drop_chunks(cat, usage.orphans));

  std::map<int64_t, std::string> candidates;  // packs that may now be empty, by id
  auto candidate = [&](const std::string& name) {
    if (const catalog::PackUsage* u = usage.pack(name)) candidates[u->id] = name;
  };
  for (const auto& f : plan.delete_packs) candidate(f.name);
  for (const auto& name : result.rewritten_packs) candidate(name);
  for (const auto& p : new_packs)  // a new pack whose every copy was abandoned
    if (!known_before.count(p.name)) candidate(p.name);
  std::set<int64_t> ids;
  for (const auto& [id, _] : candidates) ids.insert(id);
  const std::set<int64_t> deleted = catalog::delete_empty_packs(cat, ids);
  std::vector<std::string> dropped;
  for (const auto& [id, name] : candidates) {
    if (deleted.count(id)) dropped.push_back(name);
    else if (std::any_of(plan.delete_packs.begin(), plan.delete_packs.end(), [&](const GcFile& f) { return f.name == name; }))
      result.skipped.push_back("pack " + name + " not deleted: a checkpoint committed since planning references it");
  }
  for (const auto& p : new_packs)
    if (!known_before.count(p.name) && std::find(dropped.begin(), dropped.end(), p.name) == dropped.end())
      result.new_packs.push_back(p.name);
  return dropped;
}

// Removes `path` and adds its size to the result; false when it was already gone.
bool remove_counted(Env& env, const std::string& path, int64_t& freed) {
  const auto size = static_cast<int64_t>(size_of(env, path));
  if (!env.exists(path)) return false;
  history_step("gc: deleting file");
  env.remove_file(path);
  freed += size;
  return true;
}

}  // namespace

uint64_t GcPlan::bytes_freed() const {
  uint64_t n = 0;
  for (const auto& f : delete_packs) n += f.size_bytes;
  for (const auto& f : rewrite_packs) n += f.size_bytes - f.live_bytes;
  for (const auto& f : unknown_packs) n += f.size_bytes;
  for (const auto& f : temp_files) n += f.size_bytes;
  return n;
}

bool GcPlan::empty() const {
  return delete_packs.empty() && rewrite_packs.empty() && unknown_packs.empty() && temp_files.empty() &&
         orphan_chunks == 0;
}

// gc deletes files in packs/ and tmp/: refuses when either is a symbolic
// link, which would make it delete files of another directory (or store).
static void refuse_linked_dirs(const Store::Impl& impl) {
  for (const std::string& dir : {impl.packs_dir(), impl.tmp_dir()}) {
    std::optional<FileStatus> st;
    try {
      st = impl.env.status(dir);
    } catch (const io::IoError& e) {
      throw StoreError("store '" + impl.path + "': " + e.what());
    }
    if (st && st->type == FileType::kSymlink)
      throw StoreError("store '" + impl.path + "': '" + dir +
                       "' is a symbolic link; gc deletes files only in the store's own directories");
  }
}

GcPlan plan_gc(const Store& store, const GcOptions& options) {
  Store::Impl& impl = StoreAccess::impl(store);
  refuse_linked_dirs(impl);
  GcPlan plan;
  std::set<std::string> known;
  try {
    std::lock_guard lock(impl.mu);
    auto tx = impl.catalog.transaction(Kind::kRead);
    const catalog::ChunkUsage usage = catalog::chunk_usage(impl.catalog);
    for (const catalog::PackUsage& u : usage.packs) {
      known.insert(u.name);
      if (u.live_chunks == 0) {
        plan.delete_packs.push_back(file_of(u));
      } else if (below(u, options.rewrite_below)) {
        plan.rewrite_packs.push_back(file_of(u));
        plan.rewrite_live_bytes += static_cast<uint64_t>(u.live_bytes);
      }
    }
    plan.orphan_chunks = usage.orphans.size();
    tx.commit();
  } catch (const catalog::CatalogError& e) {
    throw StoreError("store '" + impl.path + "': cannot plan gc: " + e.what());
  }
  // Listed after the catalog was read: a save that commits in between shows
  // up here as a young unknown pack, which is kept.
  for (const DirFile& f : list_files(impl.env, impl.packs_dir(), pack::kPackSuffix, options.grace)) {
    if (known.count(f.name)) continue;
    if (f.old) {
      plan.unknown_packs.push_back(GcFile{f.name, f.size, 0, 0});
    } else {
      ++plan.young_unknown_files;
      ++plan.young_unknown_packs;
    }
  }
  for (const DirFile& f : list_files(impl.env, impl.tmp_dir(), "", options.grace)) {
    if (f.old) plan.temp_files.push_back(GcFile{f.name, f.size, 0, 0});
    else ++plan.young_unknown_files;
  }
  return plan;
}

GcResult run_gc(Store& store, const GcPlan& plan, const GcOptions& options) {
  Store::Impl& impl = StoreAccess::impl(store);
  refuse_linked_dirs(impl);
  if (impl.read_only) throw StoreError("store '" + impl.path + "' is open read-only; cannot run gc");
  catalog::Catalog& cat = impl.catalog;
  GcResult result;
  try {
    // 1. Copy the live chunks of packs to rewrite into new durable packs.
    //    The catalog's lock is not held while copying: saves go on.
    std::vector<Rewrite> rewrites;
    io::ProgressMeter meter(options.progress, "gc", plan.rewrite_live_bytes);
    Copier copier(impl, options, meter);
    std::vector<pack::PackInfo> new_packs;
    bool copied = true;
    try {
      // What is live in them now (one pass over the catalog for them all).
      std::set<std::string> names;
      for (const GcFile& f : plan.rewrite_packs) names.insert(f.name);
      catalog::ChunkUsage usage;
      if (!names.empty()) {
        std::lock_guard lock(impl.mu);
        auto tx = cat.transaction(Kind::kRead);
        usage = catalog::chunk_usage(cat, names);
        tx.commit();
      }
      for (const GcFile& f : plan.rewrite_packs) {
        Rewrite& rw = rewrites.emplace_back(Rewrite{f.name, {}, ""});
        const catalog::PackUsage* now = usage.pack(f.name);
        if (now && !below(*now, options.rewrite_below))
          rw.abandoned = "checkpoints committed since planning made it " + percent_live(*now) + " live";
        else
          copier.copy_pack(rw, now ? usage.live_entries[f.name] : std::vector<pack::ChunkEntry>{});
      }
      new_packs = copier.finish();
      meter.finish();
    } catch (const io::IoError& e) {
      // No room to write the copies (a full disk): no pack is rewritten this
      // time, but dead packs, orphan rows and old stray files still go, and
      // they are what frees space. The copies made are removed with `copier`.
      copied = false;
      rewrites.clear();
      for (const GcFile& f : plan.rewrite_packs)
        result.skipped.push_back("pack " + f.name + " not rewritten: writing the copy failed: " + e.what());
    }

    // 2. One transaction under the write lock re-checks and commits every
    //    catalog change. Until it commits, nothing the catalog names is gone.
    std::vector<std::string> dropped;
    {
      std::lock_guard lock(impl.mu);
      auto tx = cat.transaction(Kind::kWrite);
      dropped = commit_catalog_changes(cat, plan, rewrites, new_packs, result);
      history_step("gc: before commit");
      tx.commit();
      if (copied) copier.committed();
    }
    history_step("gc: committed");
    for (const auto& name : result.new_packs)
      result.bytes_freed -= static_cast<int64_t>(size_of(impl.env, impl.pack_path(name)));

    // 3. Delete files, holding the write lock so that no save commits in
    //    between the checks and the deletions. A save that renamed an
    //    identical pack onto a dropped name, or whose unknown pack is
    //    deleted here, fails its commit: the pack is gone.
    std::lock_guard lock(impl.mu);
    auto tx = cat.transaction(Kind::kWrite);
    int64_t freed = 0;
    for (const auto& name : dropped)
      if (!catalog::pack_known(cat, name) && remove_counted(impl.env, impl.pack_path(name), freed))
        result.deleted_packs.push_back(name);
    for (const GcFile& f : plan.unknown_packs) {
      const std::string path = impl.pack_path(f.name);
      if (catalog::pack_known(cat, f.name) || old_enough(impl.env, path, options.grace) != true) continue;
      if (remove_counted(impl.env, path, freed)) result.removed_files.push_back("packs/" + f.name);
    }
    for (const GcFile& f : plan.temp_files) {
      const std::string path = impl.tmp_dir() + "/" + f.name;
      if (old_enough(impl.env, path, options.grace) == true && remove_counted(impl.env, path, freed))
        result.removed_files.push_back("tmp/" + f.name);
    }
    impl.env.sync_dir(impl.packs_dir());
    tx.commit();
    result.bytes_freed += freed;
  } catch (const catalog::CatalogError& e) {
    throw StoreError("store '" + impl.path + "': gc failed: " + e.what());
  } catch (const io::IoError& e) {
    throw StoreError("store '" + impl.path + "': gc failed: " + e.what());
  }
  return result;
}

}  // namespace tessera
