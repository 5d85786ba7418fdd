// Limits every operation shares.
#pragma once

#include <cstddef>

namespace tessera {

// The most threads any `threads` option (SaveOptions, LoadOptions,
// ExportOptions, verify, rm, gc) and the CLI's --threads may ask for: more
// buys nothing on any disk and risks exhausting the process. Asking for more
// throws InvalidArgument naming the option, before any thread starts. 0 means
// one per core (at most this many).
inline constexpr size_t kMaxThreads = 1024;

}  // namespace tessera
