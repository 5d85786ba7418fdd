// The CLI's progress bar: one line on stderr, redrawn in place, for the
// commands that read or write many bytes (verify, export, gc). Shown only when
// stderr is a terminal and neither --quiet nor --json was given; erased when
// the operation finishes, so the command's output is the same either way.
#pragma once

#include "commands.h"
#include "tessera/progress.h"

namespace tessera::cli {

extern const Flag kQuietFlag;  // --quiet: no progress bar

// The callback for the command's options (empty when no bar is shown).
ProgressFn progress_bar(const Invocation& inv);

}  // namespace tessera::cli
