// tessera._core's store tools: the C++ library's verify, diff_checkpoints,
// remove_checkpoints, plan_gc/run_gc and export_safetensors, their results
// as typed records (_core_records.h): VerifyReport, DiffReport, GcResult,
// RemoveResult, ExportResult. Python wraps them in tessera/tools.py (a path
// or a Store, progress=True).
#include "_core_tools.h"

#include <pybind11/stl.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "tessera/export.h"
#include "tessera/history.h"
#include "tessera/inspect.h"
#include "tessera/store.h"
#include "_core_records.h"

namespace py = pybind11;

namespace tessera_py {

// gc's result: the plan, and unless dry_run what was done (zeros and empty
// lists on a dry run).
struct GcReport {
  bool dry_run = false;
  std::vector<std::string> delete_packs, rewrite_packs, unknown_packs, temp_files;
  uint64_t young_unknown_files = 0, young_unknown_packs = 0, orphan_chunks = 0, rewrite_live_bytes = 0,
           bytes_to_free = 0;
  std::vector<std::string> deleted_packs, rewritten_packs, new_packs, removed_files;
  uint64_t chunks_dropped = 0, chunks_moved = 0;
  int64_t freed_bytes = 0;
  std::vector<std::string> skipped;
};

// rm's result: the checkpoints removed, and the gc that followed (gc=True).
struct RemoveReport {
  std::vector<std::string> removed;
  std::optional<GcReport> gc;
};

namespace {

std::vector<std::string> file_names(const std::vector<tessera::GcFile>& files) {
  std::vector<std::string> out;
  for (const auto& f : files) out.push_back(f.name);
  return out;
}

GcReport gc_report(const tessera::GcPlan& p, const tessera::GcResult* r) {
  GcReport g;
  g.dry_run = r == nullptr;
  g.delete_packs = file_names(p.delete_packs);
  g.rewrite_packs = file_names(p.rewrite_packs);
  g.unknown_packs = file_names(p.unknown_packs);
  g.temp_files = file_names(p.temp_files);
  g.young_unknown_files = p.young_unknown_files;
  g.young_unknown_packs = p.young_unknown_packs;
  g.orphan_chunks = p.orphan_chunks;
  g.rewrite_live_bytes = p.rewrite_live_bytes;
  g.bytes_to_free = p.bytes_freed();
  if (r != nullptr) {
    g.deleted_packs = r->deleted_packs;
    g.rewritten_packs = r->rewritten_packs;
    g.new_packs = r->new_packs;
    g.removed_files = r->removed_files;
    g.chunks_dropped = r->chunks_dropped;
    g.chunks_moved = r->chunks_moved;
    g.freed_bytes = r->bytes_freed;
    g.skipped = r->skipped;
  }
  return g;
}

void bind_records(py::module_& m) {
  using tessera::CatalogProblem;
  using tessera::DamagedChunk;
  using tessera::VerifyReport;
  Record<DamagedChunk>(m, "DamagedChunk", "A chunk that failed verification.")
      .field("chunk", &DamagedChunk::chunk, "id, hex")
      .field("pack", &DamagedChunk::pack, "pack file name")
      .field("problem", &DamagedChunk::problem, "what is wrong")
      .field("users", &DamagedChunk::users, "\"checkpoint: tensor\" for every user")
      .done();
  Record<CatalogProblem>(m, "CatalogProblem", "Damaged catalog rows.")
      .field("checkpoint", &CatalogProblem::checkpoint, "whose rows are damaged; \"\" for the catalog as a whole")
      .field("problem", &CatalogProblem::problem, "what is wrong, naming the tensor or value")
      .done();
  Record<VerifyReport>(m, "VerifyReport", "What verify checked and found (`tessera verify`).")
      .computed("ok", &VerifyReport::ok, "no damage found")
      .field("chunks_checked", &VerifyReport::chunks_checked)
      .field("bytes_checked", &VerifyReport::bytes_checked, "stored bytes re-read")
      .field("damaged", &VerifyReport::damaged)
      .field("catalog", &VerifyReport::catalog)
      .done();

  using tessera::DiffReport;
  using tessera::EntryDiff;
  using tessera::ValueStats;
  Record<ValueStats>(m, "ValueStats", "Statistics over the elements of a tensor's changed pieces.")
      .field("max_abs_diff", &ValueStats::max_abs_diff)
      .field("relative_l2", &ValueStats::relative_l2)
      .field("elements", &ValueStats::elements, "elements compared")
      .done();
  Record<EntryDiff>(m, "EntryDiff", "An entry in both checkpoints whose dtype, shape, kind or content differs.")
      .field("name", &EntryDiff::name)
      .field("change", &EntryDiff::change, "\"dtype\", \"shape\", \"content\", \"kind\" or \"value\"")
      .field("kind_a", &EntryDiff::kind_a)
      .field("kind_b", &EntryDiff::kind_b)
      .field("dtype_a", &EntryDiff::dtype_a)
      .field("dtype_b", &EntryDiff::dtype_b)
      .field("shape_a", &EntryDiff::shape_a)
      .field("shape_b", &EntryDiff::shape_b)
      .field("changed_chunks", &EntryDiff::changed_chunks)
      .field("changed_bytes", &EntryDiff::changed_bytes)
      .field("chunks", &EntryDiff::chunks, "pieces of B's tensor")
      .field("logical_bytes", &EntryDiff::logical_bytes, "of B's entry")
      .property(
          "stats",
          [](const EntryDiff& e) -> py::object { return e.has_stats ? py::cast(e.stats) : py::none(); },
          [](EntryDiff& e, py::handle v) {
            e.has_stats = !v.is_none();
            e.stats = e.has_stats ? v.cast<ValueStats>() : ValueStats{};
          },
          "ValueStats with diff(values=True) for a float tensor, else None")
      .done();
  Record<DiffReport>(m, "DiffReport", "What changed from checkpoint a to checkpoint b (`tessera diff`).")
      .field("a", &DiffReport::a)
      .field("b", &DiffReport::b)
      .computed("identical", &DiffReport::identical)
      .field("added", &DiffReport::added, "entries only in b (sorted)")
      .field("removed", &DiffReport::removed, "entries only in a (sorted)")
      .field("changed", &DiffReport::changed, "sorted by name")
      .field("unchanged", &DiffReport::unchanged, "entries equal in both")
      .field("unchanged_bytes", &DiffReport::unchanged_bytes, "their logical bytes")
      .done();

  Record<GcReport>(m, "GcResult", "A gc's plan and, unless dry_run, what it did (`tessera gc`).")
      .field("dry_run", &GcReport::dry_run)
      .field("delete_packs", &GcReport::delete_packs, "catalog packs no chunk in use is in")
      .field("rewrite_packs", &GcReport::rewrite_packs, "packs mostly dead: live chunks copied, then deleted")
      .field("unknown_packs", &GcReport::unknown_packs, "packs the catalog does not know, older than grace")
      .field("temp_files", &GcReport::temp_files, "temporary files older than grace")
      .field("young_unknown_files", &GcReport::young_unknown_files, "unknown packs and temp files kept (young)")
      .field("young_unknown_packs", &GcReport::young_unknown_packs, "of which packs (a save may be writing them)")
      .field("orphan_chunks", &GcReport::orphan_chunks, "chunk rows no tensor references")
      .field("rewrite_live_bytes", &GcReport::rewrite_live_bytes, "bytes rewriting copies")
      .field("bytes_to_free", &GcReport::bytes_to_free, "what the plan frees")
      .field("deleted_packs", &GcReport::deleted_packs, "(run) catalog packs removed, rewritten ones included")
      .field("rewritten_packs", &GcReport::rewritten_packs, "(run)")
      .field("new_packs", &GcReport::new_packs, "(run) written by the rewrite")
      .field("removed_files", &GcReport::removed_files, "(run) unknown packs and temp files removed")
      .field("chunks_dropped", &GcReport::chunks_dropped, "(run)")
      .field("chunks_moved", &GcReport::chunks_moved, "(run)")
      .field("freed_bytes", &GcReport::freed_bytes, "(run)")
      .field("skipped", &GcReport::skipped, "(run) what was left alone, and why")
      .done();
  Record<RemoveReport>(m, "RemoveResult", "What rm removed (`tessera rm`), and the gc that followed (gc=True).")
      .field("removed", &RemoveReport::removed)
      .field("gc", &RemoveReport::gc, "GcResult with gc=True, else None")
      .done();

  using tessera::ExportedFile;
  using tessera::ExportResult;
  Record<ExportedFile>(m, "ExportedFile", "One safetensors file an export wrote.")
      .field("name", &ExportedFile::name, "file name in the output directory")
      .field("file_bytes", &ExportedFile::file_bytes, "size of the file (header included)")
      .field("tensor_bytes", &ExportedFile::tensor_bytes, "of which tensor data")
      .field("tensors", &ExportedFile::tensors, "output names, in layout order")
      .done();
  Record<ExportResult>(m, "ExportResult", "What an export wrote (`tessera export`).")
      .field("files", &ExportResult::files, "data files, in shard order")
      .field("index_file", &ExportResult::index_file, "\"model.safetensors.index.json\", or \"\" when unsharded")
      .field("tensors", &ExportResult::tensors, "tensors exported")
      .field("total_size", &ExportResult::total_size, "their bytes")
      .field("skipped", &ExportResult::skipped, "\"name (dtype)\": unsupported, skip_unsupported set")
      .field("values_skipped", &ExportResult::values_skipped, "non-tensor entries, not exported")
      .field("chunks_read", &ExportResult::chunks_read)
      .field("bytes_read", &ExportResult::bytes_read, "stored bytes read from packs")
      .field("removed", &ExportResult::removed, "files of an earlier export removed (overwrite)")
      .done();
}

}  // namespace

void bind_tools(py::module_& m) {
  bind_records(m);
  m.def(
      "verify",
      [](const tessera::Store& store, const std::vector<std::string>& checkpoints, int64_t threads,
         const py::object& progress) {
        tessera::VerifyOptions o;
        o.threads = checked_threads(threads);
        o.progress = progress_fn(progress);
        tessera::VerifyReport r;
        {
          py::gil_scoped_release nogil;
          r = tessera::verify(store, checkpoints, o);
        }
        return r;
      },
      py::arg("store"), py::arg("checkpoints") = std::vector<std::string>{}, py::arg("threads") = 0,
      py::arg("progress") = py::none(),
      "Checks the catalog and re-reads every chunk of the checkpoints (all when empty); damage is reported.");
  m.def(
      "diff",
      [](const tessera::Store& store, const std::string& a, const std::string& b, bool values, int64_t threads) {
        tessera::DiffOptions o;
        o.values = values;
        o.threads = checked_threads(threads);
        tessera::DiffReport r;
        {
          py::gil_scoped_release nogil;
          r = tessera::diff_checkpoints(store, a, b, o);
        }
        return r;
      },
      py::arg("store"), py::arg("a"), py::arg("b"), py::arg("values") = false, py::arg("threads") = 0,
      "What changed from checkpoint a to checkpoint b.");
  m.def(
      "remove",
      [](tessera::Store& store, const std::vector<std::string>& checkpoints) {
        {
          py::gil_scoped_release nogil;
          tessera::remove_checkpoints(store, checkpoints);
        }
        return RemoveReport{checkpoints, std::nullopt};
      },
      py::arg("store"), py::arg("checkpoints"), "Removes checkpoints from the catalog in one transaction.");
  m.def(
      "gc",
      [](tessera::Store& store, bool dry_run, double rewrite_below, double grace_s, const py::object& progress) {
        tessera::GcOptions o;
        o.rewrite_below = rewrite_below;
        o.grace = std::chrono::seconds(static_cast<int64_t>(grace_s));
        o.progress = progress_fn(progress);
        tessera::GcPlan plan;
        tessera::GcResult r;
        {
          py::gil_scoped_release nogil;
          plan = tessera::plan_gc(store, o);
          if (!dry_run) r = tessera::run_gc(store, plan, o);
        }
        return gc_report(plan, dry_run ? nullptr : &r);
      },
      py::arg("store"), py::arg("dry_run") = false, py::arg("rewrite_below") = 0.75, py::arg("grace_s") = 3600.0,
      py::arg("progress") = py::none(), "Plans, and unless dry_run runs, a garbage collection.");
  m.def(
      "export_safetensors",
      [](const tessera::Store& store, const std::string& checkpoint, const std::string& out_dir,
         const std::string& prefix, bool strip_prefix, uint64_t max_shard_bytes, bool skip_unsupported, bool overwrite,
         int64_t threads, const py::object& progress) {
        tessera::ExportOptions o;
        o.prefix = prefix;
        o.strip_prefix = strip_prefix;
        o.max_shard_bytes = max_shard_bytes;
        o.skip_unsupported = skip_unsupported;
        o.overwrite = overwrite;
        o.threads = checked_threads(threads);
        o.progress = progress_fn(progress);
        tessera::ExportResult r;
        {
          py::gil_scoped_release nogil;
          r = tessera::export_safetensors(store, checkpoint, out_dir, o);
        }
        return r;
      },
      py::arg("store"), py::arg("checkpoint"), py::arg("out_dir"), py::arg("prefix") = "",
      py::arg("strip_prefix") = false, py::arg("max_shard_bytes") = uint64_t{5} << 30,
      py::arg("skip_unsupported") = false, py::arg("overwrite") = false, py::arg("threads") = 0,
      py::arg("progress") = py::none(), "Writes the checkpoint's tensors as safetensors files in out_dir.");
}

}  // namespace tessera_py
