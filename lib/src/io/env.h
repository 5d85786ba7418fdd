// The Env interface is public (tessera/env.h); these helpers over it are the
// library's own.
#pragma once

#include <string>

#include "tessera/env.h"

namespace tessera::io {

// rename(from, to), then sync_dir of the directory of `to`.
void rename_durable(Env& env, const std::string& from, const std::string& to);
// The directory part of `path` ("." when it has none).
std::string parent_dir(const std::string& path);

}  // namespace tessera::io
