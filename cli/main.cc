// tessera: inspect and check a checkpoint store from the shell.
//
// main() only dispatches: it finds the command in commands(), parses its
// flags, runs it, and turns errors into a one-line message and an exit code
// (see ExitCode in commands.h).
#include <iostream>
#include <string>
#include <vector>

#include "commands.h"
#include "table.h"
#include "tessera/error.h"

namespace {

using namespace tessera::cli;

int report(const std::string& message, int code) {
  std::cerr << "tessera: " << printable(message) << '\n';  // messages quote names from the store
  return code;
}

int run(const Command& command, const std::vector<std::string>& argv) {
  try {
    const Invocation invocation = parse(command, argv);
    if (invocation.help) {
      print_usage(std::cout, command);
      return kExitOk;
    }
    const int code = command.run(invocation, std::cout);
    // A full disk or closed pipe must not pass for success.
    if (!std::cout.flush()) return report("cannot write output", kExitUsage);
    return code;
  } catch (const UsageError& e) {
    report(e.what(), kExitUsage);
    std::cerr << "usage: " << synopsis(command) << '\n';
    return kExitUsage;
  } catch (const tessera::CorruptionError& e) {
    return report(e.what(), kExitProblem);  // damaged data is a finding, not a misuse
  } catch (const std::exception& e) {
    // StoreError (not a store, newer schema), NotFoundError (unknown
    // checkpoint), and anything else that leaves the store unusable.
    return report(e.what(), kExitUsage);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> words(argv + 1, argv + argc);
  if (words.empty()) {
    print_usage(std::cerr);
    return kExitUsage;
  }
  if (words[0] == "--help" || words[0] == "-h") {
    print_usage(std::cout);
    return kExitOk;
  }
  if (words[0] == "--version") {
    std::cout << "tessera " << TESSERA_VERSION << '\n';
    return kExitOk;
  }
  const Command* command = find_command(words[0]);
  if (!command) {
    report("unknown command '" + words[0] + "'", kExitUsage);
    print_usage(std::cerr);
    return kExitUsage;
  }
  return run(*command, {words.begin() + 1, words.end()});
}
