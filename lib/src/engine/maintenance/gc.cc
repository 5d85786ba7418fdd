// Garbage collection: plan_gc() and run_gc(). The order of operations and
// why it is crash-safe are described in tessera/history.h and in
// lib/src/pack/PACK_FORMAT.md ("Garbage collection"). What to delete,
// rewrite or keep, and the re-checks that refuse what a later commit
// changed, are plan/gc_plan.h's; this file reads the catalog and the
// directories, copies chunks, commits and deletes.
#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "catalog/maintenance.h"
#include "engine/chunk_reader.h"
#include "engine/maintenance/gc.h"
#include "engine/maintenance/history_hooks.h"
#include "io/io_error.h"
#include "io/progress_meter.h"
#include "pack/pack_cache.h"
#include "pack/pack_writer.h"
#include "plan/gc_plan.h"
#include "tessera/error.h"
#include "tessera/history.h"

namespace tessera::engine {
namespace {

using Kind = catalog::Transaction::Kind;

// Time since the file's modification; nullopt when it is gone.
std::optional<std::chrono::system_clock::duration> age_of(Env& env, const std::string& path) {
  const auto st = env.status(path);
  if (!st) return std::nullopt;
  return std::chrono::system_clock::now() - st->modified;
}

// Whether the file is still there and at least `grace` old.
bool still_old(Env& env, const std::string& path, std::chrono::seconds grace) {
  const auto age = age_of(env, path);
  return age && plan::old_enough(*age, grace);
}

uint64_t size_of(Env& env, const std::string& path) {
  const auto st = env.status(path);
  return st ? st->size : 0;
}

// Regular files directly in `dir` (ending in `suffix` when it is not empty), by name.
std::vector<plan::StoreFile> list_files(Env& env, const std::string& dir, const std::string& suffix) {
  std::vector<plan::StoreFile> out;
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
      const auto age = age_of(env, path);
      if (!age) continue;  // removed meanwhile
      out.push_back(plan::StoreFile{name, size_of(env, path), *age});
    }
  } catch (const io::IoError& e) {
    throw StoreError(e.what());
  }
  std::sort(out.begin(), out.end(), [](const plan::StoreFile& a, const plan::StoreFile& b) { return a.name < b.name; });
  return out;
}

// The live chunks of one pack being rewritten, and where their copies went.
struct Rewrite {
  std::string old_pack;
  std::vector<pack::ChunkId> copied;   // in copy order
  std::vector<size_t> new_pack_of;     // per copied chunk: index into the new packs
  std::string abandoned;               // why, when the copy failed or was not worth it
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
      rw.copied.push_back(e.id);
      rw.new_pack_of.push_back(done_.size());
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

plan::CatalogPack catalog_pack(const catalog::PackUsage& u) {
  return plan::CatalogPack{u.name, static_cast<uint64_t>(u.size_bytes), static_cast<uint64_t>(u.live_bytes),
                           static_cast<uint64_t>(u.live_chunks)};
}

GcFile file_of(const plan::CatalogPack& p) { return GcFile{p.name, p.size_bytes, p.live_bytes, p.live_chunks}; }
GcFile file_of(const plan::StoreFile& f) { return GcFile{f.name, f.size_bytes, 0, 0}; }

std::vector<std::string> names_of(const std::vector<GcFile>& files) {
  std::vector<std::string> names;
  for (const GcFile& f : files) names.push_back(f.name);
  return names;
}

// The pack named `name` as `usage` has it; nullopt when the catalog has no such row.
std::optional<plan::CatalogPack> catalog_pack_named(const catalog::ChunkUsage& usage, const std::string& name) {
  if (const catalog::PackUsage* u = usage.pack(name)) return catalog_pack(*u);
  return std::nullopt;
}

// Step 2b: deletes the rows of the packs plan::drop_candidates names that no
// chunk row points at any more, trying them in id order. Returns their names.
std::vector<std::string> drop_empty_packs(catalog::Catalog& cat, const catalog::ChunkUsage& usage, const GcPlan& plan,
                                          const std::vector<std::string>& new_unnamed_before, GcResult& result) {
  const std::vector<std::string> planned = names_of(plan.delete_packs);
  std::map<int64_t, std::string> by_id;
  for (const std::string& name : plan::drop_candidates(planned, result.rewritten_packs, new_unnamed_before))
    if (const catalog::PackUsage* u = usage.pack(name)) by_id[u->id] = name;
  std::set<int64_t> ids;
  std::vector<std::string> tried;
  for (const auto& [id, name] : by_id) {
    ids.insert(id);
    tried.push_back(name);
  }
  std::set<std::string> deleted;
  for (const int64_t id : catalog::delete_empty_packs(cat, ids)) deleted.insert(by_id.at(id));
  plan::PackDrops drops = plan::settle_drops(tried, deleted, planned, new_unnamed_before);
  result.skipped.insert(result.skipped.end(), drops.skipped.begin(), drops.skipped.end());
  result.new_packs.insert(result.new_packs.end(), drops.new_packs.begin(), drops.new_packs.end());
  return std::move(drops.dropped);
}

// Step 2, under the write lock: point the copied chunks at the new packs
// (each rewrite re-checked by plan::rewrite_refusal), drop orphan chunk rows
// and the rows of packs left empty. Returns the pack names whose rows were
// dropped: their files may go once this has committed.
std::vector<std::string> commit_catalog_changes(catalog::Catalog& cat, const GcPlan& plan,
                                                const std::vector<Rewrite>& rewrites,
                                                const std::vector<pack::PackInfo>& new_packs, GcResult& result) {
  std::vector<int64_t> new_ids;
  std::vector<std::map<pack::ChunkId, uint64_t>> new_offsets;
  std::vector<std::string> new_unnamed_before;  // not a copy identical to a pack the catalog has
  for (const auto& p : new_packs) {
    if (!catalog::pack_known(cat, p.name)) new_unnamed_before.push_back(p.name);
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
  for (const Rewrite& rw : rewrites) {
    const auto live = usage.live_entries.find(rw.old_pack);  // there when the pack is being rewritten and has a row
    const auto refusal = plan::rewrite_refusal(rw.old_pack, rw.abandoned,
                                               live == usage.live_entries.end() ? nullptr : &live->second, rw.copied);
    if (refusal) {
      result.skipped.push_back(*refusal);
      continue;
    }
    const int64_t old_id = usage.pack(rw.old_pack)->id;
    for (size_t i = 0; i < rw.copied.size(); ++i) {
      const size_t to = rw.new_pack_of[i];
      if (catalog::move_chunk(cat, rw.copied[i], old_id, new_ids[to], new_offsets[to].at(rw.copied[i])))
        ++result.chunks_moved;
    }
    result.rewritten_packs.push_back(rw.old_pack);
  }
  result.chunks_dropped = static_cast<uint64_t>(catalog::drop_chunks(cat, usage.orphans));
  return drop_empty_packs(cat, usage, plan, new_unnamed_before, result);
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

// What step 1 copied.
struct Copies {
  std::vector<Rewrite> rewrites;
  std::vector<pack::PackInfo> new_packs;
  bool written = true;  // false: writing them failed, no pack is rewritten
};

// Step 1: copies the live chunks of the plan's rewrite packs (those still
// worth it, plan::rewrite_abandoned) into new durable packs. The catalog's
// lock is not held while copying: saves go on.
Copies copy_live_chunks(Store::Impl& impl, const GcPlan& plan, const GcOptions& options, Copier& copier,
                        io::ProgressMeter& meter, GcResult& result) {
  Copies c;
  try {
    // What is live in them now (one pass over the catalog for them all).
    std::set<std::string> names;
    for (const GcFile& f : plan.rewrite_packs) names.insert(f.name);
    catalog::ChunkUsage usage;
    if (!names.empty()) {
      std::lock_guard lock(impl.mu);
      auto tx = impl.catalog.transaction(Kind::kRead);
      usage = catalog::chunk_usage(impl.catalog, names);
      tx.commit();
    }
    for (const GcFile& f : plan.rewrite_packs) {
      Rewrite& rw = c.rewrites.emplace_back(Rewrite{f.name, {}, {}, ""});
      if (auto why = plan::rewrite_abandoned(catalog_pack_named(usage, f.name), options.rewrite_below))
        rw.abandoned = *why;
      else
        copier.copy_pack(rw, usage.pack(f.name) ? usage.live_entries[f.name] : std::vector<pack::ChunkEntry>{});
    }
    c.new_packs = copier.finish();
    meter.finish();
  } catch (const io::IoError& e) {
    // No room to write the copies (a full disk): no pack is rewritten this
    // time, but dead packs, orphan rows and old stray files still go, and
    // they are what frees space. The copies made are removed with the copier.
    c.written = false;
    c.rewrites.clear();
    for (const GcFile& f : plan.rewrite_packs)
      result.skipped.push_back("pack " + f.name + " not rewritten: writing the copy failed: " + e.what());
  }
  return c;
}

// Step 3: deletes files, holding the write lock so that no save commits in
// between the checks and the deletions. A save that renamed an identical
// pack onto a dropped name, or whose unknown pack is deleted here, fails its
// commit: the pack is gone.
void delete_files(Store::Impl& impl, const GcPlan& plan, const GcOptions& options,
                  const std::vector<std::string>& dropped, GcResult& result) {
  catalog::Catalog& cat = impl.catalog;
  std::lock_guard lock(impl.mu);
  auto tx = cat.transaction(Kind::kWrite);
  int64_t freed = 0;
  for (const auto& name : dropped)
    if (!catalog::pack_known(cat, name) && remove_counted(impl.env, impl.pack_path(name), freed))
      result.deleted_packs.push_back(name);
  for (const GcFile& f : plan.unknown_packs) {
    const std::string path = impl.pack_path(f.name);
    if (catalog::pack_known(cat, f.name) || !still_old(impl.env, path, options.grace)) continue;
    if (remove_counted(impl.env, path, freed)) result.removed_files.push_back("packs/" + f.name);
  }
  for (const GcFile& f : plan.temp_files) {
    const std::string path = impl.tmp_dir() + "/" + f.name;
    if (still_old(impl.env, path, options.grace) && remove_counted(impl.env, path, freed))
      result.removed_files.push_back("tmp/" + f.name);
  }
  impl.env.sync_dir(impl.packs_dir());
  tx.commit();
  result.bytes_freed += freed;
}

}  // namespace

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

GcPlan plan_gc(Store::Impl& impl, const GcOptions& options) {
  refuse_linked_dirs(impl);
  std::vector<plan::CatalogPack> packs;
  uint64_t orphans = 0;
  try {
    std::lock_guard lock(impl.mu);
    auto tx = impl.catalog.transaction(Kind::kRead);
    const catalog::ChunkUsage usage = catalog::chunk_usage(impl.catalog);
    for (const catalog::PackUsage& u : usage.packs) packs.push_back(catalog_pack(u));
    orphans = usage.orphans.size();
    tx.commit();
  } catch (const catalog::CatalogError& e) {
    throw StoreError("store '" + impl.path + "': cannot plan gc: " + e.what());
  }
  // Listed after the catalog was read (plan_gc_lists says why).
  const auto pack_files = list_files(impl.env, impl.packs_dir(), pack::kPackSuffix);
  const auto temp_files = list_files(impl.env, impl.tmp_dir(), "");
  const plan::GcLists lists = plan::plan_gc_lists(packs, pack_files, temp_files, options.rewrite_below, options.grace);
  GcPlan plan;
  for (const size_t i : lists.delete_packs) plan.delete_packs.push_back(file_of(packs[i]));
  for (const size_t i : lists.rewrite_packs) plan.rewrite_packs.push_back(file_of(packs[i]));
  for (const size_t i : lists.unknown_packs) plan.unknown_packs.push_back(file_of(pack_files[i]));
  for (const size_t i : lists.temp_files) plan.temp_files.push_back(file_of(temp_files[i]));
  plan.young_unknown_packs = lists.young_unknown_packs;
  plan.young_unknown_files = lists.young_unknown_packs + lists.young_temp_files;
  plan.orphan_chunks = orphans;
  plan.rewrite_live_bytes = lists.rewrite_live_bytes;
  return plan;
}

GcResult run_gc(Store::Impl& impl, const GcPlan& plan, const GcOptions& options) {
  refuse_linked_dirs(impl);
  if (impl.read_only) throw StoreError("store '" + impl.path + "' is open read-only; cannot run gc");
  catalog::Catalog& cat = impl.catalog;
  GcResult result;
  try {
    // 1. Copy the live chunks of packs to rewrite into new durable packs.
    io::ProgressMeter meter(options.progress, "gc", plan.rewrite_live_bytes);
    Copier copier(impl, options, meter);
    const Copies copies = copy_live_chunks(impl, plan, options, copier, meter, result);

    // 2. One transaction under the write lock re-checks and commits every
    //    catalog change. Until it commits, nothing the catalog names is gone.
    std::vector<std::string> dropped;
    {
      std::lock_guard lock(impl.mu);
      auto tx = cat.transaction(Kind::kWrite);
      dropped = commit_catalog_changes(cat, plan, copies.rewrites, copies.new_packs, result);
      history_step("gc: before commit");
      tx.commit();
      if (copies.written) copier.committed();
    }
    history_step("gc: committed");
    for (const auto& name : result.new_packs)
      result.bytes_freed -= static_cast<int64_t>(size_of(impl.env, impl.pack_path(name)));

    // 3. Delete what the catalog no longer names, and old stray files.
    delete_files(impl, plan, options, dropped, result);
  } catch (const catalog::CatalogError& e) {
    throw StoreError("store '" + impl.path + "': gc failed: " + e.what());
  } catch (const io::IoError& e) {
    throw StoreError("store '" + impl.path + "': gc failed: " + e.what());
  }
  return result;
}

}  // namespace tessera::engine
