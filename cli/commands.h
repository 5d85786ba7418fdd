// The tessera CLI's commands, as a table that main() dispatches on. Adding a
// command (diff, rm, gc, export, ...) means writing its run function and
// adding one entry to commands(); parsing, --help and exit codes are shared.
#pragma once

#include <cstddef>
#include <limits>
#include <map>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::cli {

// Exit statuses, the same for every command.
enum ExitCode : int {
  kExitOk = 0,
  kExitProblem = 1,  // the command ran and found something wrong (e.g. damage)
  kExitUsage = 2,    // bad usage, or a store or checkpoint that cannot be used
};

// The command line does not fit the command; main prints it with the usage.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Flag {
  std::string_view name;        // "--json"
  std::string_view value_name;  // "N" for a flag that takes a value, else empty
  std::string_view help;
};

// A command line after parsing against a command's flags.
struct Invocation {
  std::vector<std::string> args;               // positional arguments
  std::map<std::string, std::string> flags;    // given flags; value "" for switches
  bool help = false;                           // --help or -h was given

  bool has(std::string_view flag) const { return flags.count(std::string(flag)) != 0; }
};

struct Command {
  std::string_view name;
  std::string_view args;     // synopsis of the positional arguments: "STORE [CHECKPOINT...]"
  std::string_view summary;  // one line for the command list
  std::string_view details;  // paragraph(s) for `tessera COMMAND --help`
  std::vector<Flag> flags;
  size_t min_args = 0;
  size_t max_args = std::numeric_limits<size_t>::max();
  // Writes results to `out` and returns an ExitCode. Throws UsageError for
  // bad arguments; tessera errors propagate to main, which reports them.
  int (*run)(const Invocation& invocation, std::ostream& out);
};

// Every command, in the order `tessera --help` lists them.
const std::vector<Command>& commands();
// nullptr when there is no such command.
const Command* find_command(std::string_view name);

// Splits `argv` (the words after the command name) into positional
// arguments and the command's flags; "--" ends the flags, so a checkpoint
// may be named "-x". Throws UsageError for unknown flags, missing flag
// values and a wrong number of positional arguments (unless --help).
Invocation parse(const Command& command, const std::vector<std::string>& argv);

// The value of --threads (0, one per core, when absent). Throws UsageError
// naming `command` unless it is a number from 0 to the library's maximum
// (io::kMaxThreads), so the check comes before the store is opened.
size_t threads_flag(const Invocation& invocation, std::string_view command);

// "tessera verify STORE [CHECKPOINT...] [--json] [--threads N]"
std::string synopsis(const Command& command);
void print_usage(std::ostream& out);                          // the whole CLI
void print_usage(std::ostream& out, const Command& command);  // one command

}  // namespace tessera::cli
