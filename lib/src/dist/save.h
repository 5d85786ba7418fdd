// The distributed save's entry points: tessera::save (checkpoint.h) with
// SaveOptions::plane set, and tessera::abstain (distributed.h), come here.
#pragma once

#include <string>

#include "engine/store_impl.h"
#include "tessera/distributed.h"

namespace tessera::dist {

// The save of `state` as `checkpoint` into `store` over *options.plane.
// Throws InvalidArgument when options.plane is null, and naming the rank and
// world size when the plane's rank is outside [0, world size), before the
// plane is used.
SaveResult save(const StateDict& state, Store::Impl& store, const std::string& checkpoint, const SaveOptions& options);

// This rank's part of that save is the failure (`kind`, `what`): it needs no
// store. Rank 0 announces it at once, before any rank writes; another rank
// reports it as its part. Always throws: the save's failure, as every rank
// throws it.
[[noreturn]] void abstain(ErrorKind kind, const std::string& what, const std::string& checkpoint,
                          const SaveOptions& options);

}  // namespace tessera::dist
