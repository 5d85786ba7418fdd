// A test hook for crash tests of rm and gc: each calls history_step() at the
// boundaries between its steps (a chunk copied, a new pack durable, before
// and after the catalog commit, before each file deletion), so a test can
// sleep there to widen the window a SIGKILL lands in. No hook: no cost.
#pragma once

#include <functional>
#include <string_view>

namespace tessera::engine {

using HistoryStepHook = std::function<void(std::string_view step)>;
void set_history_step_hook(HistoryStepHook hook);  // nullptr removes it
void history_step(std::string_view step);

}  // namespace tessera::engine
