// tessera._core's store tools: the C++ library's verify, diff_checkpoints,
// remove_checkpoints, plan_gc/run_gc and export_safetensors, their results
// as dicts. Python wraps them in tessera/tools.py (a path or a Store,
// progress=True).
#include "_core_tools.h"

#include <pybind11/stl.h>

#include <chrono>
#include <string>
#include <vector>

#include "tessera/export.h"
#include "tessera/history.h"
#include "tessera/inspect.h"
#include "tessera/store.h"

namespace py = pybind11;

namespace tessera_py {
namespace {

py::dict verify_dict(const tessera::VerifyReport& r) {
  py::list damaged, catalog;
  for (const auto& d : r.damaged) {
    py::dict x;
    x["chunk"] = d.chunk;
    x["pack"] = d.pack;
    x["problem"] = d.problem;
    x["users"] = d.users;
    damaged.append(x);
  }
  for (const auto& c : r.catalog) {
    py::dict x;
    x["checkpoint"] = c.checkpoint;
    x["problem"] = c.problem;
    catalog.append(x);
  }
  py::dict d;
  d["ok"] = r.ok();
  d["chunks_checked"] = r.chunks_checked;
  d["bytes_checked"] = r.bytes_checked;
  d["damaged"] = damaged;
  d["catalog"] = catalog;
  return d;
}

py::dict diff_dict(const tessera::DiffReport& r) {
  py::list changed;
  for (const auto& e : r.changed) {
    py::dict x;
    x["name"] = e.name;
    x["change"] = e.change;
    x["kind_a"] = e.kind_a;
    x["kind_b"] = e.kind_b;
    x["dtype_a"] = e.dtype_a;
    x["dtype_b"] = e.dtype_b;
    x["shape_a"] = e.shape_a;
    x["shape_b"] = e.shape_b;
    x["changed_chunks"] = e.changed_chunks;
    x["changed_bytes"] = e.changed_bytes;
    x["chunks"] = e.chunks;
    x["logical_bytes"] = e.logical_bytes;
    if (e.has_stats) {
      py::dict st;
      st["max_abs_diff"] = e.stats.max_abs_diff;
      st["relative_l2"] = e.stats.relative_l2;
      st["elements"] = e.stats.elements;
      x["stats"] = st;
    }
    changed.append(x);
  }
  py::dict d;
  d["a"] = r.a;
  d["b"] = r.b;
  d["identical"] = r.identical();
  d["added"] = r.added;
  d["removed"] = r.removed;
  d["changed"] = changed;
  d["unchanged"] = r.unchanged;
  d["unchanged_bytes"] = r.unchanged_bytes;
  return d;
}

py::list file_names(const std::vector<tessera::GcFile>& files) {
  py::list out;
  for (const auto& f : files) out.append(f.name);
  return out;
}

py::dict gc_plan_dict(const tessera::GcPlan& p) {
  py::dict d;
  d["delete_packs"] = file_names(p.delete_packs);
  d["rewrite_packs"] = file_names(p.rewrite_packs);
  d["unknown_packs"] = file_names(p.unknown_packs);
  d["temp_files"] = file_names(p.temp_files);
  d["young_unknown_files"] = p.young_unknown_files;
  d["orphan_chunks"] = p.orphan_chunks;
  d["rewrite_live_bytes"] = p.rewrite_live_bytes;
  d["bytes_to_free"] = p.bytes_freed();
  return d;
}

}  // namespace

void bind_tools(py::module_& m) {
  m.def(
      "verify",
      [](const tessera::Store& store, const std::vector<std::string>& checkpoints, int64_t threads,
         const py::object& progress) {
        const size_t n = checked_threads(threads);
        const tessera::ProgressFn report = progress_fn(progress);
        tessera::VerifyReport r;
        {
          py::gil_scoped_release nogil;
          r = tessera::verify(store, checkpoints, n, report);
        }
        return verify_dict(r);
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
        return diff_dict(r);
      },
      py::arg("store"), py::arg("a"), py::arg("b"), py::arg("values") = false, py::arg("threads") = 0,
      "What changed from checkpoint a to checkpoint b.");
  m.def(
      "remove",
      [](tessera::Store& store, const std::vector<std::string>& checkpoints) {
        py::gil_scoped_release nogil;
        tessera::remove_checkpoints(store, checkpoints);
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
        py::dict d = gc_plan_dict(plan);
        d["dry_run"] = dry_run;
        if (!dry_run) {
          d["deleted_packs"] = r.deleted_packs;
          d["rewritten_packs"] = r.rewritten_packs;
          d["new_packs"] = r.new_packs;
          d["removed_files"] = r.removed_files;
          d["chunks_dropped"] = r.chunks_dropped;
          d["chunks_moved"] = r.chunks_moved;
          d["freed_bytes"] = r.bytes_freed;
          d["skipped"] = r.skipped;
        }
        return d;
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
        py::list files;
        for (const auto& f : r.files) {
          py::dict x;
          x["name"] = f.name;
          x["file_bytes"] = f.file_bytes;
          x["tensor_bytes"] = f.tensor_bytes;
          x["tensors"] = f.tensors;
          files.append(x);
        }
        py::dict d;
        d["files"] = files;
        d["index_file"] = r.index_file;
        d["tensors"] = r.tensors;
        d["total_size"] = r.total_size;
        d["skipped"] = r.skipped;
        d["values_skipped"] = r.values_skipped;
        d["bytes_read"] = r.bytes_read;
        d["removed"] = r.removed;
        return d;
      },
      py::arg("store"), py::arg("checkpoint"), py::arg("out_dir"), py::arg("prefix") = "",
      py::arg("strip_prefix") = false, py::arg("max_shard_bytes") = uint64_t{5} << 30,
      py::arg("skip_unsupported") = false, py::arg("overwrite") = false, py::arg("threads") = 0,
      py::arg("progress") = py::none(), "Writes the checkpoint's tensors as safetensors files in out_dir.");
}

}  // namespace tessera_py
