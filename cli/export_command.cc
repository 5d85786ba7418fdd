// tessera export: a checkpoint's tensors as consolidated safetensors files
// for the Hugging Face ecosystem (tessera/export.h does the work).
#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>

#include "history_commands.h"
#include "json.h"
#include "progress_bar.h"
#include "table.h"
#include "tessera/error.h"
#include "tessera/export.h"
#include "tessera/store.h"

namespace tessera::cli {
namespace {

// "5GiB", "512M", "5GB", "1000000": binary units for K/M/G/T with or
// without "iB", decimal for KB/MB/GB/TB (as Hugging Face's "5GB"), bytes
// without a unit. Case-insensitive.
uint64_t size_flag(const Invocation& inv, const std::string& flag, uint64_t fallback) {
  auto it = inv.flags.find(flag);
  if (it == inv.flags.end()) return fallback;
  const std::string& text = it->second;
  auto bad = [&] {
    return UsageError("export: " + flag + " wants a size in bytes such as 1000000, 512MiB or 5GB, got '" + text + "'");
  };
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end == text.data()) throw bad();
  std::string unit(end, text.data() + text.size());
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char c) { return std::tolower(c); });
  uint64_t scale = 0;
  const std::pair<const char*, uint64_t> units[] = {
      {"", 1},          {"b", 1},
      {"k", 1ull << 10}, {"kib", 1ull << 10}, {"kb", 1000ull},
      {"m", 1ull << 20}, {"mib", 1ull << 20}, {"mb", 1000ull * 1000},
      {"g", 1ull << 30}, {"gib", 1ull << 30}, {"gb", 1000ull * 1000 * 1000},
      {"t", 1ull << 40}, {"tib", 1ull << 40}, {"tb", 1000ull * 1000 * 1000 * 1000}};
  for (const auto& [name, value] : units)
    if (unit == name) scale = value;
  if (scale == 0 || n == 0 || n > std::numeric_limits<uint64_t>::max() / scale) throw bad();
  return n * scale;
}

std::string plural(uint64_t n, std::string_view noun) {
  return std::to_string(n) + " " + std::string(noun) + (n == 1 ? "" : "s");
}

}  // namespace

int run_export(const Invocation& inv, std::ostream& out) {
  // Usage errors before opening anything.
  if (auto it = inv.flags.find("--format"); it != inv.flags.end() && it->second != "safetensors")
    throw UsageError("export: unknown --format '" + it->second + "' (supported: safetensors)");
  ExportOptions options;
  options.max_shard_bytes = size_flag(inv, "--max-shard-bytes", options.max_shard_bytes);
  options.threads = threads_flag(inv, "export");
  if (auto it = inv.flags.find("--prefix"); it != inv.flags.end()) options.prefix = it->second;
  options.strip_prefix = inv.has("--strip-prefix");
  if (options.strip_prefix && options.prefix.empty()) throw UsageError("export: --strip-prefix needs --prefix");
  options.skip_unsupported = inv.has("--skip-unsupported");
  options.overwrite = inv.has("--force");
  options.progress = progress_bar(inv);

  const Store store = Store::open_read_only(inv.args[0]);
  const std::string& checkpoint = inv.args[1];
  std::string out_dir = inv.args[2];
  while (out_dir.size() > 1 && out_dir.back() == '/') out_dir.pop_back();
  options.metadata["tessera_checkpoint"] = checkpoint;

  ExportResult r;
  try {
    r = export_safetensors(store, checkpoint, out_dir, options);
  } catch (const AlreadyExistsError& e) {
    throw AlreadyExistsError(std::string(e.what()) + " (--force replaces it)");
  } catch (const InvalidArgument& e) {
    const std::string what = e.what(), unsupported = "has no safetensors equivalent";
    if (what.size() < unsupported.size() || what.compare(what.size() - unsupported.size(), unsupported.size(), unsupported) != 0)
      throw;
    throw InvalidArgument(what + " (--skip-unsupported exports the rest)");
  }

  if (inv.has("--json")) {
    Json files = Json::array();
    for (const ExportedFile& f : r.files)
      files.push(Json::object()
                     .set("name", Json::string(f.name))
                     .set("file_bytes", Json::number(f.file_bytes))
                     .set("tensor_bytes", Json::number(f.tensor_bytes))
                     .set("tensors", Json::number(static_cast<uint64_t>(f.tensors.size()))));
    Json skipped = Json::array(), removed = Json::array();
    for (const auto& s : r.skipped) skipped.push(Json::string(s));
    for (const auto& s : r.removed) removed.push(Json::string(s));
    Json::object()
        .set("checkpoint", Json::string(checkpoint))
        .set("out", Json::string(out_dir))
        .set("format", Json::string("safetensors"))
        .set("files", std::move(files))
        .set("index", r.index_file.empty() ? Json::null() : Json::string(r.index_file))
        .set("tensors", Json::number(r.tensors))
        .set("total_size", Json::number(r.total_size))
        .set("skipped", std::move(skipped))
        .set("values_skipped", Json::number(r.values_skipped))
        .set("removed", std::move(removed))
        .set("chunks_read", Json::number(r.chunks_read))
        .set("bytes_read", Json::number(r.bytes_read))
        .write(out);
    out << '\n';
    return kExitOk;
  }

  out << "exported " << plural(r.tensors, "tensor") << " (" << human_bytes(r.total_size) << ") of checkpoint '"
      << printable(checkpoint) << "' to '" << printable(out_dir) << "'\n";
  using A = Table::Align;
  Table table({{"FILE", A::kLeft}, {"TENSORS", A::kRight}, {"SIZE", A::kRight}});
  for (const ExportedFile& f : r.files)
    table.add_row({f.name, std::to_string(f.tensors.size()), human_bytes(f.file_bytes)});
  if (!r.index_file.empty()) table.add_row({r.index_file, "-", "-"});
  table.print(out);
  if (!r.skipped.empty()) {
    out << "skipped " << plural(r.skipped.size(), "tensor") << " with a dtype safetensors lacks:";
    for (const auto& s : r.skipped) out << ' ' << s;
    out << '\n';
  }
  if (r.values_skipped) out << "not exported: " << plural(r.values_skipped, "value") << " (safetensors holds tensors only)\n";
  if (!r.removed.empty()) {
    out << "removed " << plural(r.removed.size(), "file") << " of the earlier export:";
    for (const auto& s : r.removed) out << ' ' << s;
    out << '\n';
  }
  return kExitOk;
}

}  // namespace tessera::cli
