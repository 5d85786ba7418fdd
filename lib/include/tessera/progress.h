// Progress of long operations (save, load, verify, export, gc), reported to a
// callback the caller passes in the operation's options.
//
// The callback runs on whichever of the operation's threads crosses the next
// reporting interval (about 10 times a second), never on two threads at once,
// and once more with `finished` set when the operation has done its work. It
// must not throw or call back into the same store. An empty callback costs
// nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

namespace tessera {

struct Progress {
  std::string_view operation;  // "save", "load", "verify", "export", "gc"
  uint64_t done_bytes = 0;     // bytes processed so far
  uint64_t total_bytes = 0;    // bytes the operation will process (0: unknown)
  double seconds = 0;          // since the operation started
  bool finished = false;       // the last report
};

using ProgressFn = std::function<void(const Progress&)>;

}  // namespace tessera
