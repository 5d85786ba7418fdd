// Entry points of the distributed save beside tessera::save (distributed.h):
// a rank that failed before it could describe its state still takes part.
#pragma once

#include <string>

#include "dist/failure.h"
#include "tessera/distributed.h"

namespace tessera::dist {

// Takes part in the save of `checkpoint` as tessera::save(state, store_path,
// checkpoint, plane, ...) does, with `failure` as this rank's part: the save
// fails on every rank with this rank's cause, as its class (the message reads
// "save of checkpoint '<name>' failed: rank <r>: <what>"), instead of leaving
// the others waiting. Always throws.
[[noreturn]] void abstain(const Failure& failure, const std::string& store_path, const std::string& checkpoint,
                          ControlPlane& plane, const SaveOptions& options = {}, const DistributedOptions& dist = {});

}  // namespace tessera::dist
