// Gc planning: which packs gc deletes, rewrites or leaves, which stray files
// (packs the catalog does not name, files in tmp/) it removes, and the
// re-checks under the write lock that refuse what a later commit changed.
// Pure: pack names, sizes, live bytes, file ages and chunk ids in, decisions
// out (engine/gc.cc reads the catalog, lists the directories, copies chunks
// and deletes files; tessera/history.h and PACK_FORMAT.md describe the order).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "pack/pack_format.h"

namespace tessera::plan {

// A pack the catalog names, and how much of it some layout references.
struct CatalogPack {
  std::string name;
  uint64_t size_bytes = 0;
  uint64_t live_bytes = 0;   // stored bytes of its live chunks
  uint64_t live_chunks = 0;  // chunk rows in it that a layout references
};

// A regular file in packs/ or tmp/.
struct StoreFile {
  std::string name;
  uint64_t size_bytes = 0;
  std::chrono::system_clock::duration age{};  // since its modification time
};

// Whether a pack's live fraction is below `rewrite_below` (0 never, 1 any dead byte).
bool worth_rewriting(const CatalogPack& pack, double rewrite_below);

// Whether a file this old may be deleted when the catalog does not name it.
inline bool old_enough(std::chrono::system_clock::duration age, std::chrono::seconds grace) { return age >= grace; }

// "37%": a pack's live fraction, rounded down (0% for an empty pack).
std::string percent_live(const CatalogPack& pack);

// What gc would do; lists of indexes into plan_gc_lists' inputs, in their order.
struct GcLists {
  std::vector<size_t> delete_packs;   // catalog packs with no live chunk
  std::vector<size_t> rewrite_packs;  // catalog packs with live chunks, worth rewriting
  std::vector<size_t> unknown_packs;  // pack files the catalog does not name, old enough
  std::vector<size_t> temp_files;     // temp files old enough
  uint64_t young_unknown_packs = 0;   // pack files the catalog does not name, too young (a save may be writing them)
  uint64_t young_temp_files = 0;      // temp files too young
  uint64_t rewrite_live_bytes = 0;    // the live bytes of the rewrite packs: what rewriting copies
};

// Classifies the catalog's packs (rewrite_below) and the files of packs/ and
// tmp/ (grace). A pack file whose name is a catalog pack's is that pack.
// List pack files after reading the catalog: a save that commits in
// between then shows as a young unknown pack, which is kept.
GcLists plan_gc_lists(const std::vector<CatalogPack>& packs, const std::vector<StoreFile>& pack_files,
                      const std::vector<StoreFile>& temp_files, double rewrite_below, std::chrono::seconds grace);

// ---- re-checks, as run_gc carries the plan out ---------------------------------

// Before copying a planned rewrite: why it is abandoned, or nullopt to copy.
// `now` is the pack as the catalog has it now (nullopt: it left the catalog;
// then the copy, of nothing, is refused under the write lock).
std::optional<std::string> rewrite_abandoned(const std::optional<CatalogPack>& now, double rewrite_below);

// Under the write lock: why the rewrite of `pack` cannot be committed
// ("pack NAME not rewritten: ..."), or nullopt when its copies replace it.
// Refused when the copy was abandoned (`abandoned`, why; empty if it was
// not), when the pack left the catalog (`live_now` null), or when a
// checkpoint committed since planning references a live chunk of it that
// was not copied. `live_now`: its live chunk rows now.
std::optional<std::string> rewrite_refusal(const std::string& pack, const std::string& abandoned,
                                           const std::vector<pack::ChunkEntry>* live_now,
                                           const std::vector<pack::ChunkId>& copied);

// The packs whose rows gc deletes when no chunk row points at them any more:
// the plan's delete packs, the packs just rewritten, and new packs the
// catalog did not name before (every copy into them abandoned). Each once,
// in that order.
std::vector<std::string> drop_candidates(const std::vector<std::string>& planned_deletes,
                                         const std::vector<std::string>& rewritten,
                                         const std::vector<std::string>& new_unnamed_before);

// What deleting the empty candidates' rows came to.
struct PackDrops {
  std::vector<std::string> dropped;    // rows deleted, in `tried` order: their files may go once committed
  std::vector<std::string> skipped;    // planned deletes refused: "pack NAME not deleted: ..."
  std::vector<std::string> new_packs;  // new packs the catalog keeps, in their order
};

// `tried`: the candidates with a row, in the order their rows were tried;
// `deleted`: those whose rows went (no chunk row pointed at them).
PackDrops settle_drops(const std::vector<std::string>& tried, const std::set<std::string>& deleted,
                       const std::vector<std::string>& planned_deletes,
                       const std::vector<std::string>& new_unnamed_before);

}  // namespace tessera::plan
