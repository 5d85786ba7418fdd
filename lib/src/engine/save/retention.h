// SaveOptions::keep_last, applied by the coordinator right after a commit.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/store_impl.h"
#include "tessera/checkpoint.h"

namespace tessera::engine {

// Throws InvalidArgument naming SaveOptions::keep_last unless it is 0 (keep
// all) or positive; saves call it before writing anything.
void check_keep_last(int64_t keep_last);

// Removes the oldest checkpoints (by commit order) so that at most
// `keep_last` remain, never `just_saved`; returns the names removed (oldest
// first). keep_last <= 0 keeps everything. Does not run gc.
std::vector<std::string> apply_keep_last(Store::Impl& store, int64_t keep_last, const std::string& just_saved);

// SaveOptions::keep_last for a save that has committed `just_saved`: removes
// what apply_keep_last removes, then deletes the packs that left without a
// live chunk (unless a save may be writing to the store: see SaveOptions);
// fills result.removed and result.freed_bytes. Any failure becomes a
// StoreError that says the checkpoint was committed.
void apply_retention_after_commit(Store::Impl& store, int64_t keep_last, const std::string& just_saved,
                                  SaveResult& result);

}  // namespace tessera::engine
