#include "commands.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <set>

#include "history_commands.h"
#include "json.h"
#include "progress_bar.h"
#include "table.h"
#include "tessera/compression.h"
#include "tessera/inspect.h"
#include "tessera/limits.h"
#include "tessera/store.h"

namespace tessera::cli {
namespace {

const Flag kJsonFlag{"--json", "", "print JSON (exact byte counts) instead of a table"};

// "1 tensor", "2 tensors".
std::string count_of(int64_t n, std::string_view noun) {
  return std::to_string(n) + " " + std::string(noun) + (n == 1 ? "" : "s");
}

void write_json(std::ostream& out, const Json& json) {
  json.write(out);
  out << '\n';
}

// ---- ls ---------------------------------------------------------------------

int run_ls(const Invocation& inv, std::ostream& out) {
  const Store store = Store::open_read_only(inv.args[0]);
  const std::vector<CheckpointSummary> checkpoints = store.checkpoints();

  if (inv.has("--json")) {
    Json list = Json::array();
    for (const CheckpointSummary& c : checkpoints)
      list.push(Json::object()
                    .set("name", Json::string(c.name))
                    .set("created", Json::string(c.created_at))
                    .set("world_size", Json::number(c.world_size))
                    .set("tensors", Json::number(c.tensors))
                    .set("values", Json::number(c.values))
                    .set("logical_bytes", Json::number(c.logical_bytes))
                    .set("stored_bytes", Json::number(c.stored_bytes))
                    .set("added_bytes", Json::number(c.added_bytes)));
    write_json(out, Json::object().set("store", Json::string(store.path())).set("checkpoints", std::move(list)));
    return kExitOk;
  }

  if (checkpoints.empty()) {
    out << "no checkpoints in store '" << store.path() << "'\n";
    return kExitOk;
  }
  using A = Table::Align;
  Table table({{"NAME", A::kLeft},
               {"CREATED", A::kLeft},
               {"WORLD", A::kRight},
               {"TENSORS", A::kRight},
               {"LOGICAL", A::kRight},
               {"STORED", A::kRight},
               {"ADDED", A::kRight}});
  for (const CheckpointSummary& c : checkpoints)
    table.add_row({c.name, c.created_at, std::to_string(c.world_size), std::to_string(c.tensors),
                   human_bytes(static_cast<uint64_t>(c.logical_bytes)),
                   human_bytes(static_cast<uint64_t>(c.stored_bytes)),
                   human_bytes(static_cast<uint64_t>(c.added_bytes))});
  table.print(out);
  return kExitOk;
}

// ---- show -------------------------------------------------------------------

// Long values (a config blob) would push every other row off screen.
constexpr size_t kValueCellChars = 60;

int run_show(const Invocation& inv, std::ostream& out) {
  const Store store = Store::open_read_only(inv.args[0]);
  const std::string& name = inv.args[1];
  const CheckpointSummary summary = store.checkpoint(name);  // NotFoundError names it
  const std::vector<EntryInfo> entries = describe(store, name);

  if (inv.has("--json")) {
    Json list = Json::array();
    for (const EntryInfo& e : entries) {
      Json entry = Json::object();
      entry.set("name", Json::string(e.name)).set("kind", Json::string(e.kind));
      if (e.kind == "tensor") {
        entry.set("dtype", Json::string(e.dtype))
            .set("shape", shape_json(e.shape))
            .set("chunks", Json::number(e.chunks))
            .set("logical_bytes", Json::number(e.logical_bytes))
            .set("stored_bytes", Json::number(e.stored_bytes))
            .set("shared_with_previous", Json::boolean(e.shared_with_previous));
      } else {
        // Always a string (describe()'s printable form), whatever the kind,
        // so consumers see one type for "value".
        entry.set("logical_bytes", Json::number(e.logical_bytes)).set("value", Json::string(e.value));
      }
      list.push(std::move(entry));
    }
    write_json(out, Json::object()
                        .set("name", Json::string(summary.name))
                        .set("created", Json::string(summary.created_at))
                        .set("world_size", Json::number(summary.world_size))
                        .set("tensors", Json::number(summary.tensors))
                        .set("values", Json::number(summary.values))
                        .set("logical_bytes", Json::number(summary.logical_bytes))
                        .set("stored_bytes", Json::number(summary.stored_bytes))
                        .set("entries", std::move(list)));
    return kExitOk;
  }

  out << "checkpoint '" << printable(summary.name) << "': created " << summary.created_at << ", world size "
      << summary.world_size << ", " << count_of(summary.tensors, "tensor") << ", "
      << count_of(summary.values, "value") << ", " << human_bytes(static_cast<uint64_t>(summary.logical_bytes))
      << " logical, " << human_bytes(static_cast<uint64_t>(summary.stored_bytes)) << " stored\n";
  if (entries.empty()) return kExitOk;
  out << '\n';
  using A = Table::Align;
  Table table({{"NAME", A::kLeft},
               {"TYPE", A::kLeft},
               {"SHAPE", A::kLeft},
               {"CHUNKS", A::kRight},
               {"LOGICAL", A::kRight},
               {"STORED", A::kRight},
               {"SHARED", A::kLeft},
               {"VALUE", A::kLeft}});
  for (const EntryInfo& e : entries) {
    const auto logical = human_bytes(static_cast<uint64_t>(e.logical_bytes));
    if (e.kind == "tensor")
      table.add_row({e.name, e.dtype, to_string(e.shape), std::to_string(e.chunks), logical,
                     human_bytes(static_cast<uint64_t>(e.stored_bytes)), e.shared_with_previous ? "yes" : "no", ""});
    else  // values live inline in the catalog: no shape, chunks or pack bytes
      table.add_row({e.name, e.kind, "-", "-", logical, "-", "-", one_line(e.value, kValueCellChars)});
  }
  table.print(out);
  return kExitOk;
}

// ---- verify -----------------------------------------------------------------

int run_verify(const Invocation& inv, std::ostream& out) {
  const size_t threads = threads_flag(inv, "verify");  // before opening: usage errors first
  const Store store = Store::open_read_only(inv.args[0]);
  // Each name once, in the order given: tessera::verify would list a
  // chunk's users twice for a checkpoint named twice.
  std::vector<std::string> names;
  std::set<std::string> seen;
  for (size_t i = 1; i < inv.args.size(); ++i)
    if (seen.insert(inv.args[i]).second) names.push_back(inv.args[i]);

  VerifyOptions options;
  options.threads = threads;
  options.progress = progress_bar(inv);
  const VerifyReport report = verify(store, names, options);

  if (inv.has("--json")) {
    Json damaged = Json::array();
    for (const DamagedChunk& d : report.damaged) {
      Json users = Json::array();
      for (const std::string& u : d.users) users.push(Json::string(u));
      damaged.push(Json::object()
                       .set("chunk", Json::string(d.chunk))
                       .set("pack", Json::string(d.pack))
                       .set("problem", Json::string(d.problem))
                       .set("users", std::move(users)));
    }
    Json catalog = Json::array();
    for (const CatalogProblem& c : report.catalog)
      catalog.push(Json::object().set("checkpoint", Json::string(c.checkpoint)).set("problem", Json::string(c.problem)));
    write_json(out, Json::object()
                        .set("ok", Json::boolean(report.ok()))
                        .set("chunks_checked", Json::number(report.chunks_checked))
                        .set("bytes_checked", Json::number(report.bytes_checked))
                        .set("damaged", std::move(damaged))
                        .set("catalog", std::move(catalog)));
    return report.ok() ? kExitOk : kExitProblem;
  }

  out << "checked " << count_of(static_cast<int64_t>(report.chunks_checked), "chunk") << ", "
      << human_bytes(report.bytes_checked) << " read";
  if (report.ok()) {
    out << ": all ok\n";
    return kExitOk;
  }
  out << '\n';
  for (const CatalogProblem& c : report.catalog)
    out << "damaged catalog" << (c.checkpoint.empty() ? "" : " rows of checkpoint '" + printable(c.checkpoint) + "'")
        << ": " << printable(c.problem) << '\n';
  for (const DamagedChunk& d : report.damaged) {
    out << "damaged chunk " << d.chunk << " in pack " << printable(d.pack) << ": " << printable(d.problem) << '\n';
    for (const std::string& u : d.users) out << "  used by " << printable(u) << '\n';
  }
  if (!report.catalog.empty()) out << count_of(static_cast<int64_t>(report.catalog.size()), "catalog problem") << ", ";
  out << report.damaged.size() << " of " << report.chunks_checked << " chunks damaged\n";
  return kExitProblem;
}

// ---- help -------------------------------------------------------------------

int run_help(const Invocation& inv, std::ostream& out) {
  if (inv.args.empty()) {
    print_usage(out);
    return kExitOk;
  }
  const Command* command = find_command(inv.args[0]);
  if (!command) throw UsageError("help: unknown command '" + inv.args[0] + "'");
  print_usage(out, *command);
  return kExitOk;
}

}  // namespace

const std::vector<Command>& commands() {
  static const std::string kCompressionHelp = "how chunks are stored: " + compression_names() + " (default auto)";
  static const std::vector<Command> kCommands = {
      {"ls", "STORE", "list the checkpoints of a store",
       "One row per checkpoint: name, creation time (UTC), world size, tensors,\n"
       "logical bytes (raw tensor bytes), stored bytes (of the chunks it\n"
       "references; checkpoints share chunks, so these do not add up) and\n"
       "added bytes (stored bytes of the chunks its save added to the store,\n"
       "recorded when it was committed).",
       {kJsonFlag}, 1, 1, run_ls},
      {"show", "STORE CHECKPOINT", "list the tensors and values of a checkpoint",
       "A header with the checkpoint's totals, then one row per entry: tensors\n"
       "with dtype, global shape, chunks and bytes; values with their kind and\n"
       "printable value. SHARED is yes for a tensor whose chunks (box for box)\n"
       "are those of the same tensor in the checkpoint committed just before.",
       {kJsonFlag}, 2, 2, run_show},
      {"verify", "STORE [CHECKPOINT...]", "re-read and re-hash stored chunks",
       "Re-reads every chunk the named checkpoints reference (all checkpoints\n"
       "when none are named) and checks it against its checksums. Lists each\n"
       "damaged chunk with its pack, the problem and the tensors that use it.\n"
       "Exits 1 when anything is damaged.",
       {kJsonFlag, {"--threads", "N", "reader threads (default 0: one per core)"}, kQuietFlag}, 1,
       std::numeric_limits<size_t>::max(), run_verify},
      {"diff", "STORE A B", "compare two checkpoints",
       "Lists entries added in B, removed from A, and changed: dtype, shape, kind,\n"
       "value, or content. Content is judged by chunk ids box for box, so it reads\n"
       "no tensor data (unless the two were saved on different chunk grids or\n"
       "shards: then both tensors are loaded and compared). CHUNKS is changed/all\n"
       "pieces of B, BYTES their raw bytes. --values adds max |b - a| and\n"
       "||b - a|| / ||a|| for changed float tensors, over the changed pieces,\n"
       "reading only their chunks. Exits 0 when identical, 1 when different, 2 on\n"
       "errors (damaged chunks included).",
       {{"--values", "", "add max |b - a| and relative L2 for changed float tensors"}, kJsonFlag}, 3, 3, run_diff},
      {"rm", "STORE [CHECKPOINT...]", "remove checkpoints from a store",
       "Removes the named checkpoints from the catalog in one transaction: if any\n"
       "name is unknown, none is removed. --keep-last N also removes the oldest\n"
       "checkpoints beyond the newest N (of those not named). The chunks they\n"
       "alone used stay on disk until 'tessera gc', or --gc runs it right after.",
       {{"--keep-last", "N", "also remove all but the newest N checkpoints (N >= 1)"},
        {"--gc", "", "then run gc (default options) and report the bytes freed"}, kJsonFlag}, 1,
       std::numeric_limits<size_t>::max(), run_rm},
      {"gc", "STORE", "delete and compact packs no checkpoint needs",
       "Plans, then acts: deletes packs no checkpoint references, rewrites packs\n"
       "whose live fraction (bytes of referenced chunks / pack size) is below\n"
       "--rewrite-below, drops orphan chunk rows, and deletes leftovers of killed\n"
       "saves (packs the catalog does not know, files in tmp/) once they are older\n"
       "than --grace: younger ones may belong to a save still running. Catalog\n"
       "references are dropped (committed) before any file they named is deleted.\n"
       "--dry-run prints the plan and the bytes it would free, and changes nothing.",
       {{"--dry-run", "", "print the plan; change nothing"},
        {"--rewrite-below", "F", "rewrite packs less than this fraction live (default 0.75; 0 never)"},
        {"--grace", "SECONDS", "keep unknown packs and temp files younger than this (default 3600)"},
        kJsonFlag, kQuietFlag},
       1, 1, run_gc},
      {"export", "STORE CHECKPOINT OUT", "write a checkpoint's tensors as safetensors files",
       "Writes the checkpoint's tensors (those starting with --prefix) into the\n"
       "directory OUT as consolidated safetensors files, whatever shards saved\n"
       "them: OUT/model.safetensors, or, when their bytes exceed --max-shard-bytes,\n"
       "OUT/model-00001-of-0000N.safetensors ... and model.safetensors.index.json\n"
       "(the layout transformers' from_pretrained reads). Streams chunk by chunk,\n"
       "checking each against its checksums; memory stays at one chunk per thread.\n"
       "Values (ints, strings) are not exported. Files appear only once all are\n"
       "complete. Exits 2 on an unknown checkpoint, a prefix no tensor has, a dtype\n"
       "safetensors lacks (complex128, ...; see --skip-unsupported) or an earlier\n"
       "export in OUT (see --force); 1 on a damaged chunk.",
       {{"--format", "FORMAT", "output format (default and only: safetensors)"},
        {"--prefix", "P", "export only tensors whose names start with P (e.g. model.)"},
        {"--strip-prefix", "", "drop P from the names in the output"},
        {"--max-shard-bytes", "N", "shard beyond N bytes (default 5GiB; units K/M/G/T, KiB..., KB...)"},
        {"--skip-unsupported", "", "skip tensors whose dtype safetensors lacks, instead of failing"},
        {"--force", "", "replace an earlier export in OUT"},
        {"--threads", "N", "chunk reader threads (default 0: one per core)"},
        kJsonFlag, kQuietFlag},
       3, 3, run_export},
      {"import-dcp", "DIR STORE CHECKPOINT", "copy a torch.distributed.checkpoint directory into a store",
       "Reads the DCP checkpoint in DIR (FileSystemWriter's format) tensor by tensor\n"
       "through DCP's own reader and commits it as CHECKPOINT of STORE (created if\n"
       "missing) in one transaction; chunks the store holds are not written again.\n"
       "DCP's metadata is kept, so tessera.dcp.StorageReader loads it as DCP did.\n"
       "Runs the Python package: $TESSERA_PYTHON (default python3) -m tessera\n"
       "import-dcp, which needs tessera installed there (pip install .).",
       {{"--compression", "C", kCompressionHelp},
        {"--batch-bytes", "N", "tensor bytes held in memory at once (default 256 MiB)"}, kQuietFlag},
       3, 3, run_import_dcp},
      {"help", "[COMMAND]", "show help for tessera or one command", "", {}, 0, 1, run_help},
  };
  return kCommands;
}

const Command* find_command(std::string_view name) {
  for (const Command& c : commands())
    if (c.name == name) return &c;
  return nullptr;
}

size_t threads_flag(const Invocation& inv, std::string_view command) {
  auto it = inv.flags.find("--threads");
  if (it == inv.flags.end()) return 0;
  const std::string& text = it->second;
  size_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n > kMaxThreads)
    throw UsageError(std::string(command) + ": --threads wants a number from 0 to " +
                     std::to_string(kMaxThreads) + ", got '" + text + "'");
  return n;
}

Invocation parse(const Command& command, const std::vector<std::string>& argv) {
  Invocation inv;
  bool flags_done = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& word = argv[i];
    if (flags_done || word.size() < 2 || word[0] != '-') {
      inv.args.push_back(word);
      continue;
    }
    if (word == "--") {
      flags_done = true;
      continue;
    }
    if (word == "--help" || word == "-h") {
      inv.help = true;
      continue;
    }
    // Both "--threads N" and "--threads=N".
    const size_t eq = word.find('=');
    const std::string name = word.substr(0, eq);
    auto flag = std::find_if(command.flags.begin(), command.flags.end(), [&](const Flag& f) { return f.name == name; });
    if (flag == command.flags.end())
      throw UsageError(std::string(command.name) + ": unknown option '" + name + "'");
    if (flag->value_name.empty()) {
      if (eq != std::string::npos) throw UsageError(std::string(command.name) + ": " + name + " takes no value");
      inv.flags[name] = "";
    } else if (eq != std::string::npos) {
      inv.flags[name] = word.substr(eq + 1);
    } else if (i + 1 < argv.size()) {
      inv.flags[name] = argv[++i];
    } else {
      throw UsageError(std::string(command.name) + ": " + name + " needs a value (" +
                       std::string(flag->value_name) + ")");
    }
  }
  if (inv.help) return inv;  // `show --help` needs no STORE
  if (inv.args.size() < command.min_args || inv.args.size() > command.max_args)
    throw UsageError(std::string(command.name) + ": expected " + std::string(command.args) + ", got " +
                     count_of(static_cast<int64_t>(inv.args.size()), "argument"));
  return inv;
}

std::string synopsis(const Command& c) {
  std::string out = "tessera " + std::string(c.name);
  if (!c.args.empty()) out += " " + std::string(c.args);
  for (const Flag& f : c.flags) {
    out += " [" + std::string(f.name);
    if (!f.value_name.empty()) out += " " + std::string(f.value_name);
    out += "]";
  }
  return out;
}

void print_usage(std::ostream& out) {
  out << "usage: tessera COMMAND [ARGS...]\n\n"
         "Inspect, check, compare and prune a tessera checkpoint store.\n\ncommands:\n";
  size_t width = 0;
  for (const Command& c : commands()) width = std::max(width, c.name.size());
  for (const Command& c : commands())
    out << "  " << c.name << std::string(width - c.name.size() + 2, ' ') << c.summary << '\n';
  out << "\nexit status: 0 ok, 1 a problem found (damage; for diff: the checkpoints differ),\n"
         "2 bad usage or an unusable store\n"
         "Run 'tessera COMMAND --help' for a command's arguments.\n";
}

void print_usage(std::ostream& out, const Command& command) {
  // The summary is written lowercase for the command list; here it starts a sentence.
  std::string sentence(command.summary);
  if (!sentence.empty()) sentence[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(sentence[0])));
  out << "usage: " << synopsis(command) << "\n\n" << sentence << ".\n";
  if (!command.details.empty()) out << '\n' << command.details << '\n';
  out << "\noptions:\n";
  auto left_of = [](const Flag& f) {
    return std::string(f.name) + (f.value_name.empty() ? "" : " " + std::string(f.value_name));
  };
  size_t width = 14;  // "-h, --help" and two spaces, at least
  for (const Flag& f : command.flags) width = std::max(width, left_of(f).size() + 2);
  for (const Flag& f : command.flags) {
    const std::string left = left_of(f);
    out << "  " << left << std::string(width - left.size(), ' ') << f.help << '\n';
  }
  out << "  -h, --help" << std::string(width - 10, ' ') << "show this help\n";
}

}  // namespace tessera::cli
