// tessera import-dcp DIR STORE CHECKPOINT: copies a DCP checkpoint directory
// into a store. DCP's .metadata is a Python pickle, so the work is done by
// the Python package (python/tessera/import_dcp.py); this command runs
// `$TESSERA_PYTHON -m tessera import-dcp ...` (default python3), which needs
// the package importable there (pip install . into that environment).
#include <spawn.h>
#include <sys/wait.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "history_commands.h"
#include "tessera/compression.h"
#include "tessera/error.h"

extern char** environ;

namespace tessera::cli {

int run_import_dcp(const Invocation& inv, std::ostream& out) {
  if (inv.has("--compression")) {  // refused here, before Python starts, in the words of every other usage error
    try {
      parse_compression(inv.flags.at("--compression"));
    } catch (const InvalidArgument& e) {
      throw UsageError(std::string("import-dcp: --compression: ") + e.what());
    }
  }
  const char* env_python = std::getenv("TESSERA_PYTHON");
  const std::string python = env_python && *env_python ? env_python : "python3";
  std::vector<std::string> words = {python, "-m", "tessera", "import-dcp", "--", inv.args[0], inv.args[1],
                                    inv.args[2]};
  for (const char* flag : {"--compression", "--batch-bytes"})
    if (inv.has(flag)) words.insert(words.begin() + 4, {flag, inv.flags.at(flag)});
  if (inv.has("--quiet")) words.insert(words.begin() + 4, "--quiet");  // else a bar when stderr is a terminal
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  out.flush();
  pid_t pid = 0;
  if (int err = posix_spawnp(&pid, python.c_str(), nullptr, nullptr, argv.data(), environ); err != 0)
    throw UsageError("import-dcp runs the Python package: cannot start '" + python +
                     "' (set TESSERA_PYTHON to a Python with tessera installed)");
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  if (!WIFEXITED(status)) return kExitUsage;
  const int code = WEXITSTATUS(status);
  if (code == 1)  // Python's own failure (e.g. no module named tessera), not ours
    std::cerr << "tessera: import-dcp needs the Python package tessera importable by '" << python
              << "' (pip install . there, or set TESSERA_PYTHON)\n";
  return code == 0 ? kExitOk : kExitUsage;
}

}  // namespace tessera::cli
