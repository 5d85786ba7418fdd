// Saving in two phases, for callers that coordinate their ranks themselves
// (the Python package's DCP backend, whose planner already gathers every
// rank's results through the process group).
//
//   every rank:   write_part(state, store)   -> SavedPart (opaque manifest)
//   coordinator:  commit_parts(store, name, manifests of all ranks, world size)
//   on failure:   discard_part(store, manifest) for each part written
//
// write_part makes this rank's chunks durable in new packs and returns a
// manifest: the chunk records the coordinator needs. A manifest is opaque
// bytes, valid only for a build of the same version, and only until the
// packs it names are committed or garbage-collected (gc deletes unreferenced
// packs older than its grace period). commit_parts validates all manifests
// together (dtype and global shape agree, pieces tile every tensor exactly)
// and commits them in one catalog transaction, exactly like tessera::save.
//
// tessera::save (checkpoint.h) and the distributed save (distributed.h) are
// these two phases with the coordination built in; prefer them when you can.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tessera/checkpoint.h"

namespace tessera {

struct SavedPart {
  std::string manifest;  // opaque; hand it to the coordinator unchanged
  SaveResult stats;      // what this part wrote
};

// Writes the chunks of `state` into new durable packs of `store` (which may
// be open read-only: packs are files, only the commit writes the catalog).
// A rank may write several parts for one checkpoint; their manifests are
// committed together. `rank` only names the part in error messages.
SavedPart write_part(const StateDict& state, Store& store, const SaveOptions& options = {}, int64_t rank = 0);

// REQUIRES: store opened read-write; world_size >= 1 (else InvalidArgument).
// Commits the parts as `checkpoint`, recording `world_size` (the ranks that
// saved it, as CheckpointSummary::world_size reports) and options.metadata;
// keep_last and overwrite apply. Throws AlreadyExistsError if the name exists
// (unless options.overwrite), InvalidArgument naming the tensor when the
// parts do not form a consistent state; the catalog is then unchanged and
// the caller should discard the parts.
SaveResult commit_parts(Store& store, const std::string& checkpoint, const std::vector<std::string>& manifests,
                        int64_t world_size, const SaveOptions& options = {});

// Best-effort removal of the packs a part wrote (after a failed save).
// Never throws; packs a committed checkpoint references must not be passed.
void discard_part(Store& store, const std::string& manifest);

}  // namespace tessera
