#include "history_commands.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <set>

#include "json.h"
#include "progress_bar.h"
#include "table.h"
#include "tessera/error.h"
#include "tessera/history.h"
#include "tessera/state_dict.h"  // to_string(Shape)
#include "tessera/store.h"

namespace tessera::cli {
namespace {

// "1 pack", "2 packs"; `nouns` when the plural is not noun + "s".
std::string plural(uint64_t n, std::string_view noun, std::string_view nouns = "") {
  if (n == 1) return "1 " + std::string(noun);
  return std::to_string(n) + " " + (nouns.empty() ? std::string(noun) + "s" : std::string(nouns));
}

std::string quoted_list(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "'" : ", '") + printable(n) + "'";
  return s;
}

Json string_list(const std::vector<std::string>& items) {
  Json out = Json::array();
  for (const auto& s : items) out.push(Json::string(s));
  return out;
}

// "12.5%"
std::string percent(uint64_t part, uint64_t whole) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", whole ? 100.0 * static_cast<double>(part) / static_cast<double>(whole) : 0.0);
  return buf;
}

std::string real_text(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return "inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", d);
  return buf;
}

// The flag's value as an integer in [min, max]; `fallback` when absent.
int64_t int_flag(const Invocation& inv, std::string_view command, std::string_view flag, int64_t min, int64_t max,
                 int64_t fallback) {
  auto it = inv.flags.find(std::string(flag));
  if (it == inv.flags.end()) return fallback;
  const std::string& text = it->second;
  int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n < min || n > max)
    throw UsageError(std::string(command) + ": " + std::string(flag) + " wants a whole number from " +
                     std::to_string(min) + " to " + std::to_string(max) + ", got '" + text + "'");
  return n;
}

constexpr int64_t kMaxCount = int64_t{1} << 40;  // bound for counts and seconds on the command line

}  // namespace

// ---- rm ---------------------------------------------------------------------

int run_rm(const Invocation& inv, std::ostream& out) {
  const bool keep_given = inv.has("--keep-last");
  const int64_t keep = int_flag(inv, "rm", "--keep-last", 1, kMaxCount, 0);
  if (inv.args.size() < 2 && !keep_given) throw UsageError("rm: name the checkpoints to remove, or give --keep-last N");
  StoreOptions options;
  options.create_if_missing = false;
  Store store = Store::open(inv.args[0], options);

  std::vector<std::string> names(inv.args.begin() + 1, inv.args.end());
  if (keep_given) {
    // The oldest of those not named explicitly, beyond the newest `keep`.
    const std::set<std::string> named(names.begin(), names.end());
    std::vector<std::string> others;
    for (const CheckpointSummary& c : store.checkpoints())
      if (!named.count(c.name)) others.push_back(c.name);
    for (size_t i = 0; i + static_cast<size_t>(keep) < others.size(); ++i) names.push_back(others[i]);
  }
  std::vector<std::string> unique;
  std::set<std::string> seen;
  for (const auto& n : names)
    if (seen.insert(n).second) unique.push_back(n);
  const bool json = inv.has("--json");
  if (!unique.empty()) remove_checkpoints(store, unique);  // all or nothing; NotFoundError names the unknown ones
  std::optional<GcResult> gc;
  if (inv.has("--gc")) gc = run_gc(store, plan_gc(store));
  if (json) {
    Json removed = Json::array();
    for (const auto& n : unique) removed.push(Json::string(n));
    Json j = Json::object().set("store", Json::string(store.path())).set("removed", std::move(removed));
    if (gc) j.set("freed_bytes", Json::number(gc->bytes_freed)).set("gc_skipped", string_list(gc->skipped));
    j.write(out);
    out << '\n';
    return kExitOk;
  }
  if (unique.empty()) out << "nothing to remove: store '" << store.path() << "' has no more than " << keep << " checkpoints\n";
  else out << "removed " << plural(unique.size(), "checkpoint") << ": " << quoted_list(unique) << '\n';
  if (gc) {
    out << "gc freed " << (gc->bytes_freed < 0 ? "-" + human_bytes(static_cast<uint64_t>(-gc->bytes_freed))
                                               : human_bytes(static_cast<uint64_t>(gc->bytes_freed)))
        << '\n';
    for (const auto& s : gc->skipped) out << "  skipped: " << printable(s) << '\n';
  } else if (!unique.empty()) {
    out << "run 'tessera gc " << store.path() << "' to free the space no other checkpoint uses\n";
  }
  return kExitOk;
}

// ---- gc ---------------------------------------------------------------------

namespace {

GcOptions gc_options(const Invocation& inv) {
  GcOptions o;
  if (auto it = inv.flags.find("--rewrite-below"); it != inv.flags.end()) {
    const std::string& text = it->second;
    char* end = nullptr;
    const double f = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || !(f >= 0.0 && f <= 1.0))
      throw UsageError("gc: --rewrite-below wants a fraction from 0 to 1, got '" + text + "'");
    o.rewrite_below = f;
  }
  o.grace = std::chrono::seconds(int_flag(inv, "gc", "--grace", 0, kMaxCount, o.grace.count()));
  return o;
}

Json files_json(const std::vector<GcFile>& files, bool with_live) {
  Json list = Json::array();
  for (const GcFile& f : files) {
    Json j = Json::object().set("name", Json::string(f.name)).set("size_bytes", Json::number(f.size_bytes));
    if (with_live) j.set("live_bytes", Json::number(f.live_bytes)).set("live_chunks", Json::number(f.live_chunks));
    list.push(std::move(j));
  }
  return list;
}

Json plan_json(const GcPlan& plan) {
  return Json::object()
      .set("delete_packs", files_json(plan.delete_packs, false))
      .set("rewrite_packs", files_json(plan.rewrite_packs, true))
      .set("unknown_packs", files_json(plan.unknown_packs, false))
      .set("temp_files", files_json(plan.temp_files, false))
      .set("young_files_kept", Json::number(plan.young_unknown_files))
      .set("orphan_chunks", Json::number(plan.orphan_chunks))
      .set("rewrite_live_bytes", Json::number(plan.rewrite_live_bytes))
      .set("bytes_freed", Json::number(plan.bytes_freed()));
}

void print_plan(std::ostream& out, const GcPlan& plan, const std::string& store, const GcOptions& o) {
  using A = Table::Align;
  Table table({{"ACTION", A::kLeft}, {"FILE", A::kLeft}, {"SIZE", A::kRight}, {"LIVE", A::kRight}});
  for (const GcFile& f : plan.delete_packs) table.add_row({"delete", "packs/" + f.name, human_bytes(f.size_bytes), "0.0%"});
  for (const GcFile& f : plan.rewrite_packs)
    table.add_row({"rewrite", "packs/" + f.name, human_bytes(f.size_bytes), percent(f.live_bytes, f.size_bytes)});
  for (const GcFile& f : plan.unknown_packs) table.add_row({"delete", "packs/" + f.name + " (unknown)", human_bytes(f.size_bytes), "-"});
  for (const GcFile& f : plan.temp_files) table.add_row({"delete", "tmp/" + f.name, human_bytes(f.size_bytes), "-"});
  out << "gc plan for store '" << store << "':\n";
  if (!table.empty()) table.print(out);
  out << plural(plan.delete_packs.size(), "pack") << " to delete, " << plural(plan.rewrite_packs.size(), "pack")
      << " to rewrite (" << human_bytes(plan.rewrite_live_bytes) << " live to copy), "
      << plural(plan.unknown_packs.size() + plan.temp_files.size(), "leftover file") << ", "
      << plural(plan.orphan_chunks, "orphan chunk row") << "; frees " << human_bytes(plan.bytes_freed()) << '\n';
  if (plan.young_unknown_files)
    out << "kept " << plural(plan.young_unknown_files, "file") << " not in the catalog and younger than the grace period ("
        << o.grace.count() << " s): a save may be writing them\n";
}

}  // namespace

int run_gc(const Invocation& inv, std::ostream& out) {
  GcOptions options = gc_options(inv);  // usage errors before opening
  const bool dry_run = inv.has("--dry-run");
  if (!dry_run) options.progress = progress_bar(inv);  // copying live chunks out of packs being rewritten
  StoreOptions so;
  so.create_if_missing = false;
  so.read_only = dry_run;  // a dry run changes nothing, not even the catalog's schema
  Store store = Store::open(inv.args[0], so);
  const GcPlan plan = plan_gc(store, options);
  const bool json = inv.has("--json");
  if (dry_run) {
    if (json) {
      plan_json(plan).set("dry_run", Json::boolean(true)).write(out);
      out << '\n';
    } else {
      print_plan(out, plan, store.path(), options);
      out << "dry run: nothing changed\n";
    }
    return kExitOk;
  }
  const GcResult r = run_gc(store, plan, options);
  if (json) {
    plan_json(plan)
        .set("dry_run", Json::boolean(false))
        .set("deleted_packs", string_list(r.deleted_packs))
        .set("rewritten_packs", string_list(r.rewritten_packs))
        .set("new_packs", string_list(r.new_packs))
        .set("removed_files", string_list(r.removed_files))
        .set("chunks_dropped", Json::number(r.chunks_dropped))
        .set("chunks_moved", Json::number(r.chunks_moved))
        .set("freed_bytes", Json::number(r.bytes_freed))
        .set("skipped", string_list(r.skipped))
        .write(out);
    out << '\n';
    return kExitOk;
  }
  print_plan(out, plan, store.path(), options);
  out << "deleted " << plural(r.deleted_packs.size(), "pack") << ", rewrote " << plural(r.rewritten_packs.size(), "pack")
      << " into " << plural(r.new_packs.size(), "new pack") << ", removed " << plural(r.removed_files.size(), "leftover file")
      << ", dropped " << plural(r.chunks_dropped, "chunk row") << "; freed "
      << (r.bytes_freed < 0 ? "-" + human_bytes(static_cast<uint64_t>(-r.bytes_freed))
                            : human_bytes(static_cast<uint64_t>(r.bytes_freed)))
      << '\n';
  for (const std::string& s : r.skipped) out << "skipped: " << s << '\n';
  return kExitOk;
}

// ---- diff -------------------------------------------------------------------

namespace {

Json change_json(const EntryDiff& d) {
  Json j = Json::object()
               .set("name", Json::string(d.name))
               .set("change", Json::string(d.change))
               .set("kind_a", Json::string(d.kind_a))
               .set("kind_b", Json::string(d.kind_b));
  if (d.kind_a == "tensor") j.set("dtype_a", Json::string(d.dtype_a)).set("shape_a", shape_json(d.shape_a));
  if (d.kind_b == "tensor") j.set("dtype_b", Json::string(d.dtype_b)).set("shape_b", shape_json(d.shape_b));
  j.set("chunks", Json::number(d.chunks))
      .set("changed_chunks", Json::number(d.changed_chunks))
      .set("changed_bytes", Json::number(d.changed_bytes))
      .set("logical_bytes", Json::number(d.logical_bytes));
  if (d.has_stats)
    j.set("max_abs_diff", Json::real(d.stats.max_abs_diff))
        .set("relative_l2", Json::real(d.stats.relative_l2))
        .set("elements_compared", Json::number(d.stats.elements));
  return j;
}

// What changed, in words: "content", "dtype float32 -> bfloat16", ...
std::string change_text(const EntryDiff& d) {
  if (d.change == "dtype") return "dtype " + d.dtype_a + " -> " + d.dtype_b;
  if (d.change == "shape") return "shape " + to_string(d.shape_a) + " -> " + to_string(d.shape_b);
  if (d.change == "kind") return "kind " + d.kind_a + " -> " + d.kind_b;
  return d.change;
}

void print_diff(std::ostream& out, const DiffReport& r, bool values) {
  if (r.identical()) {
    out << "checkpoints '" << printable(r.a) << "' and '" << printable(r.b) << "' are identical: " << plural(static_cast<uint64_t>(r.unchanged), "entry", "entries")
        << ", " << human_bytes(static_cast<uint64_t>(r.unchanged_bytes)) << '\n';
    return;
  }
  using A = Table::Align;
  std::vector<Table::Column> columns = {{"STATUS", A::kLeft}, {"NAME", A::kLeft},   {"CHANGE", A::kLeft},
                                        {"CHUNKS", A::kRight}, {"BYTES", A::kRight}};
  if (values) {
    columns.push_back({"MAX|D|", A::kRight});
    columns.push_back({"REL_L2", A::kRight});
  }
  Table table(columns);
  auto row = [&](std::vector<std::string> cells) {
    if (values) cells.insert(cells.end(), {"-", "-"});
    table.add_row(std::move(cells));
  };
  for (const auto& n : r.added) row({"added", n, "-", "-", "-"});
  for (const auto& n : r.removed) row({"removed", n, "-", "-", "-"});
  for (const EntryDiff& d : r.changed) {
    const bool tensor = d.kind_b == "tensor";  // values have no chunks
    std::vector<std::string> cells = {"changed", d.name, change_text(d),
                                      tensor ? std::to_string(d.changed_chunks) + "/" + std::to_string(d.chunks) : "-",
                                      human_bytes(static_cast<uint64_t>(d.changed_bytes))};
    if (values) {
      cells.push_back(d.has_stats ? real_text(d.stats.max_abs_diff) : "-");
      cells.push_back(d.has_stats ? real_text(d.stats.relative_l2) : "-");
    }
    table.add_row(std::move(cells));
  }
  table.print(out);
  out << r.added.size() << " added, " << r.removed.size() << " removed, " << r.changed.size() << " changed, "
      << r.unchanged << " unchanged (" << human_bytes(static_cast<uint64_t>(r.unchanged_bytes)) << ")\n";
}

}  // namespace

int run_diff(const Invocation& inv, std::ostream& out) {
  const Store store = Store::open_read_only(inv.args[0]);
  DiffOptions options;
  options.values = inv.has("--values");
  DiffReport report;
  try {
    report = diff_checkpoints(store, inv.args[1], inv.args[2], options);
  } catch (const CorruptionError& e) {
    throw StoreError(e.what());  // exit 2: for diff, 1 means "different"
  }
  if (inv.has("--json")) {
    Json changed = Json::array();
    for (const EntryDiff& d : report.changed) changed.push(change_json(d));
    Json::object()
        .set("a", Json::string(report.a))
        .set("b", Json::string(report.b))
        .set("identical", Json::boolean(report.identical()))
        .set("added", string_list(report.added))
        .set("removed", string_list(report.removed))
        .set("changed", std::move(changed))
        .set("unchanged", Json::number(report.unchanged))
        .set("unchanged_bytes", Json::number(report.unchanged_bytes))
        .write(out);
    out << '\n';
  } else {
    print_diff(out, report, options.values);
  }
  return report.identical() ? kExitOk : kExitProblem;
}

}  // namespace tessera::cli
