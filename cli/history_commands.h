// The commands that work on a store's history: rm, gc and diff (here), and
// export (export_command.cc). Their entries in the command table
// (commands.cc) point at these.
#pragma once

#include <ostream>

#include "commands.h"

namespace tessera::cli {

// tessera rm STORE [CHECKPOINT...] [--keep-last N]
int run_rm(const Invocation& invocation, std::ostream& out);
// tessera gc STORE [--dry-run] [--rewrite-below F] [--grace SECONDS] [--json]
int run_gc(const Invocation& invocation, std::ostream& out);
// tessera diff STORE A B [--values] [--json]; exits 0 identical, 1 different.
int run_diff(const Invocation& invocation, std::ostream& out);
// tessera export STORE CHECKPOINT OUT [--format safetensors] [--prefix P] [--strip-prefix]
//   [--max-shard-bytes N] [--skip-unsupported] [--force] [--threads N] [--json]
int run_export(const Invocation& invocation, std::ostream& out);
// tessera import-dcp DIR STORE CHECKPOINT [--compression C] [--batch-bytes N]
// (import_dcp_command.cc: runs the Python package).
int run_import_dcp(const Invocation& invocation, std::ostream& out);

}  // namespace tessera::cli
