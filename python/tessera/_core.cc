// tessera._core: the Python binding over the LibTorch-free core library.
//
// Tensors cross the boundary as plain descriptions, never as torch objects,
// so this file needs no LibTorch headers (it compiles in seconds):
//
//   ("t", name, data_ptr, dtype, elem_size, sizes, strides,
//         global_shape, offsets, replica_index, replica_count)
//   ("s", name, dtype, elem_size, sizes, global_shape, offsets,
//         replica_index, replica_count, acquire, release)
//   ("v", name, value)        value: int | float | str | bytes
//
// data_ptr is the address of the local element at index 0 of a CPU tensor
// that the caller keeps alive (and, for loads, writable) for the call. For
// loads a value entry's value is a template of the expected kind; the loaded
// values come back in the result's "values" dict.
//
// A staged ("s") entry has no host bytes of its own (a CUDA tensor): its
// bytes pass through a contiguous host buffer that Python provides when
// they move. acquire() -> data_ptr returns that buffer, filled
// for a save (TensorEntry::stage_for_save; called lazily from a worker
// thread) or to be filled for a load (load_target); release(cast: bool) is
// called once the buffer is no longer needed (after_save; for a load,
// finish_load: the bytes have landed and may be copied to the device).
//
// Every call that reads or writes chunks releases the GIL; the control
// plane's callbacks take it back for their Python calls.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tessera/checkpoint.h"
#include "tessera/distributed.h"
#include "tessera/error.h"
#include "tessera/inspect.h"
#include "tessera/parts.h"
#include "tessera/state_dict.h"
#include "tessera/store.h"
#include "_core_tools.h"

namespace py = pybind11;

namespace {

using tessera::Shape;

Shape to_shape(const py::handle& seq) {
  Shape s;
  for (auto x : seq) s.push_back(x.cast<int64_t>());
  return s;
}

tessera::Value to_value(const std::string& name, const py::handle& v) {
  if (py::isinstance<py::bool_>(v))
    throw tessera::InvalidArgument("value '" + name + "': bool is not a tessera value kind (encode it first)");
  if (py::isinstance<py::int_>(v)) return v.cast<int64_t>();
  if (py::isinstance<py::float_>(v)) return v.cast<double>();
  if (py::isinstance<py::str>(v)) return v.cast<std::string>();
  if (py::isinstance<py::bytes>(v)) return tessera::Bytes{v.cast<std::string>()};
  throw tessera::InvalidArgument("value '" + name + "': expected int, float, str or bytes, got " +
                                 py::str(py::type::of(v)).cast<std::string>());
}

py::object from_value(const tessera::Value& v) {
  if (auto* b = std::get_if<tessera::Bytes>(&v)) return py::bytes(b->data);
  if (auto* i = std::get_if<int64_t>(&v)) return py::int_(*i);
  if (auto* d = std::get_if<double>(&v)) return py::float_(*d);
  return py::str(std::get<std::string>(v));
}

// A Python callable held by C++ hooks, which may run and be destroyed on
// threads that do not hold the GIL. Python exceptions become tessera::Error.
class PyCallback {
 public:
  PyCallback(std::string what, py::object f)
      : what_(std::move(what)), f_(new py::object(std::move(f)), [](py::object* p) {
          py::gil_scoped_acquire gil;
          delete p;
        }) {}
  // Calls it and drops the result (under the GIL).
  template <typename... Args>
  void call(Args&&... args) const {
    call_and([](const py::object&) {}, std::forward<Args>(args)...);
  }
  // Runs `use` on the result while the GIL is still held.
  template <typename Use, typename... Args>
  auto call_and(Use use, Args&&... args) const {
    py::gil_scoped_acquire gil;
    try {
      return use((*f_)(std::forward<Args>(args)...));
    } catch (py::error_already_set& e) {
      throw tessera::Error(what_ + ": " + e.what());
    }
  }

 private:
  std::string what_;
  std::shared_ptr<py::object> f_;
};

// A Python progress callback as a ProgressFn (tessera/progress.h): called as
// f(operation, done_bytes, total_bytes, seconds, finished) under the GIL, on
// whichever worker thread reports. An exception it raises cannot unwind the
// workers (a report may come from a destructor): it goes to
// sys.unraisablehook and the operation goes on.
tessera::ProgressFn progress_fn(const py::object& f) {
  if (f.is_none()) return {};
  auto held = std::make_shared<PyCallback>("progress callback", f);
  return [held](const tessera::Progress& p) {
    try {
      held->call(std::string(p.operation), p.done_bytes, p.total_bytes, p.seconds, p.finished);
    } catch (const std::exception& e) {
      py::gil_scoped_acquire gil;
      PyErr_SetString(PyExc_RuntimeError, e.what());
      PyErr_WriteUnraisable(nullptr);
    }
  };
}

// A staged entry ("s", see the top of the file).
tessera::TensorEntry staged_entry(const std::string& name, const py::tuple& t) {
  if (t.size() != 11) throw tessera::InvalidArgument("entry '" + name + "': malformed staged description");
  tessera::TensorEntry e;
  tessera::TensorView& v = e.view;
  v.dtype = t[2].cast<std::string>();
  v.elem_size = t[3].cast<size_t>();
  v.sizes = to_shape(t[4]);
  v.strides = tessera::TensorView::contiguous(v.dtype, v.elem_size, nullptr, v.sizes).strides;
  v.global_shape = to_shape(t[5]);
  v.offsets = to_shape(t[6]);
  v.replica_index = t[7].cast<int64_t>();
  v.replica_count = t[8].cast<int64_t>();
  auto acquire = std::make_shared<PyCallback>("tensor '" + name + "': staging", py::reinterpret_borrow<py::object>(t[9]));
  auto release = std::make_shared<PyCallback>("tensor '" + name + "': staging", py::reinterpret_borrow<py::object>(t[10]));
  auto host_view = [acquire, base = v] {  // the buffer is contiguous: only its address is new
    return acquire->call_and([&](const py::object& r) {
      tessera::TensorView h = base;
      h.data = reinterpret_cast<std::byte*>(r.cast<uintptr_t>());
      return h;
    });
  };
  e.stage_for_save = host_view;
  e.load_target = host_view;
  e.after_save = [release] { release->call(false); };
  e.finish_load = [release](bool cast) { release->call(cast); };
  return e;
}

// Adds one entry description (see the top of the file) to `state`.
void add_entry(tessera::StateDict& state, const py::handle& entry) {
  auto t = entry.cast<py::tuple>();
  const std::string kind = t[0].cast<std::string>(), name = t[1].cast<std::string>();
  if (kind == "v") {
    state.add_value(name, to_value(name, t[2]));
    return;
  }
  if (kind == "s") {
    state.add_tensor(name, staged_entry(name, t));
    return;
  }
  if (kind != "t" || t.size() != 11) throw tessera::InvalidArgument("entry '" + name + "': malformed description");
  tessera::TensorView v;
  v.data = reinterpret_cast<std::byte*>(t[2].cast<uintptr_t>());
  v.dtype = t[3].cast<std::string>();
  v.elem_size = t[4].cast<size_t>();
  v.sizes = to_shape(t[5]);
  v.strides = to_shape(t[6]);
  v.global_shape = to_shape(t[7]);
  v.offsets = to_shape(t[8]);
  v.replica_index = t[9].cast<int64_t>();
  v.replica_count = t[10].cast<int64_t>();
  state.add_tensor(name, std::move(v));
}

tessera::StateDict to_state(const py::iterable& entries) {
  tessera::StateDict state;
  for (auto e : entries) add_entry(state, e);
  return state;
}

tessera::Compression compression_of(const std::string& s) {
  if (s == "auto") return tessera::Compression::kAuto;
  if (s == "none") return tessera::Compression::kNone;
  if (s == "lz4") return tessera::Compression::kLz4;
  if (s == "shuffle-lz4") return tessera::Compression::kShuffleLz4;
  if (s == "shuffle-huffman") return tessera::Compression::kShuffleHuffman;
  throw tessera::InvalidArgument("unknown compression '" + s +
                                 "' (auto, none, lz4, shuffle-lz4, shuffle-huffman)");
}

// Worker threads asked for, as the library's size_t (which refuses more
// than its maximum, io::kMaxThreads, where the threads start).
size_t checked_threads(int64_t n) {
  if (n < 0) throw tessera::InvalidArgument("threads must be 0 (one per core) or more, got " + std::to_string(n));
  return static_cast<size_t>(n);
}

// SaveOptions from keyword arguments; unknown keys are an error.
tessera::SaveOptions save_options(const py::dict& kw) {
  tessera::SaveOptions o;
  for (auto [k, v] : kw) {
    const std::string key = k.cast<std::string>();
    if (key == "chunk_bytes") o.chunk_bytes = v.cast<int64_t>();
    else if (key == "pack_bytes") o.pack_bytes = v.cast<uint64_t>();
    else if (key == "compression") o.compression = compression_of(v.cast<std::string>());
    else if (key == "dedup") o.dedup = v.cast<bool>();
    else if (key == "threads") o.threads = checked_threads(v.cast<int64_t>());
    else if (key == "metadata") o.metadata = v.cast<std::string>();
    else if (key == "world_size") o.world_size = v.cast<int64_t>();
    else if (key == "keep_last") o.keep_last = v.cast<int64_t>();
    else if (key == "overwrite") o.overwrite = v.cast<bool>();
    else if (key == "progress") o.progress = progress_fn(py::reinterpret_borrow<py::object>(v));
    else throw tessera::InvalidArgument("unknown save option '" + key + "'");
  }
  return o;
}

py::dict stats_dict(const tessera::SaveResult& r) {
  py::dict d;
  d["logical_bytes"] = r.logical_bytes;
  d["written_bytes"] = r.written_bytes;
  d["chunks"] = r.chunks;
  d["chunks_written"] = r.chunks_written;
  d["packs"] = r.packs;
  d["removed"] = r.removed;
  d["freed_bytes"] = r.freed_bytes;
  return d;
}

py::dict summary_dict(const tessera::CheckpointSummary& s) {
  py::dict d;
  d["name"] = s.name;
  d["created_at"] = s.created_at;
  d["world_size"] = s.world_size;
  d["tensors"] = s.tensors;
  d["values"] = s.values;
  d["logical_bytes"] = s.logical_bytes;
  d["stored_bytes"] = s.stored_bytes;
  d["added_bytes"] = s.added_bytes;
  d["metadata"] = s.metadata;
  return d;
}

// A ControlPlane whose key/value operations are Python callables — in the
// package, torch.distributed's own Store (see tessera/_dist.py):
//   set(key: str, value: bytes) -> None
//   wait_get(key: str, timeout_seconds: float) -> bytes | None
//   add(key: str, delta: int) -> int
//   compare_set(key: str, expected: bytes, desired: bytes) -> bytes
//   delete_key(key: str) -> bool
// with the semantics of the ControlPlane methods of the same names.
class PyControlPlane : public tessera::ControlPlane {
 public:
  PyControlPlane(int64_t rank, int64_t world, py::object set, py::object wait_get, py::object add,
                 py::object compare_set, py::object delete_key)
      : rank_(rank),
        world_(world),
        set_(std::move(set)),
        wait_get_(std::move(wait_get)),
        add_(std::move(add)),
        compare_set_(std::move(compare_set)),
        delete_key_(std::move(delete_key)) {}
  ~PyControlPlane() override {
    py::gil_scoped_acquire gil;
    for (py::object* f : {&set_, &wait_get_, &add_, &compare_set_, &delete_key_}) *f = py::object();
  }
  int64_t rank() const override { return rank_; }
  int64_t world_size() const override { return world_; }
  void set(const std::string& key, const std::string& value) override {
    call("set", key, [&] { set_(key, py::bytes(value)); });
  }
  std::optional<std::string> wait_get(const std::string& key, std::chrono::milliseconds timeout) override {
    std::optional<std::string> out;
    call("get", key, [&] {
      py::object v = wait_get_(key, static_cast<double>(timeout.count()) / 1000.0);
      if (!v.is_none()) out = v.cast<std::string>();
    });
    return out;
  }
  int64_t add(const std::string& key, int64_t delta) override {
    int64_t sum = 0;
    call("add", key, [&] { sum = add_(key, delta).cast<int64_t>(); });
    return sum;
  }
  std::string compare_set(const std::string& key, const std::string& expected, const std::string& desired) override {
    std::string now;
    call("compare_set", key,
         [&] { now = compare_set_(key, py::bytes(expected), py::bytes(desired)).cast<std::string>(); });
    return now;
  }
  bool delete_key(const std::string& key) override {
    bool deleted = false;
    call("delete", key, [&] { deleted = delete_key_(key).cast<bool>(); });
    return deleted;
  }

 private:
  // Runs `op` holding the GIL; a Python exception becomes a tessera::Error
  // naming the operation and the key.
  template <class Op>
  static void call(const char* what, const std::string& key, Op&& op) {
    py::gil_scoped_acquire gil;
    try {
      op();
    } catch (py::error_already_set& e) {
      throw tessera::Error(std::string("control plane: ") + what + " '" + key + "' failed: " + e.what());
    } catch (py::cast_error& e) {
      throw tessera::Error(std::string("control plane: ") + what + " '" + key + "' returned the wrong type: " +
                           e.what());
    }
  }

  int64_t rank_, world_;
  py::object set_, wait_get_, add_, compare_set_, delete_key_;
};

}  // namespace

namespace tessera_py {
tessera::ProgressFn progress_fn(const py::object& f) { return ::progress_fn(f); }
size_t checked_threads(int64_t n) { return ::checked_threads(n); }
}  // namespace tessera_py

PYBIND11_MODULE(_core, m) {
  m.doc() = "tessera's C++ core (see tessera/__init__.py for the Python API)";

  // Each C++ class becomes the Python class of the same name; error_kinds
  // lists them by their ErrorKind number (tessera/error.h), the number that
  // carries an error's class between ranks.
  using tessera::ErrorKind;
  auto error = py::register_exception<tessera::Error>(m, "Error", PyExc_RuntimeError);
  std::vector<std::pair<ErrorKind, py::object>> kinds{
      {ErrorKind::kError, error},
      {ErrorKind::kStore, py::register_exception<tessera::StoreError>(m, "StoreError", error.ptr())},
      {ErrorKind::kNotFound, py::register_exception<tessera::NotFoundError>(m, "NotFoundError", error.ptr())},
      {ErrorKind::kAlreadyExists,
       py::register_exception<tessera::AlreadyExistsError>(m, "AlreadyExistsError", error.ptr())},
      {ErrorKind::kInvalidArgument,
       py::register_exception<tessera::InvalidArgument>(m, "InvalidArgument", error.ptr())},
      {ErrorKind::kCorruption, py::register_exception<tessera::CorruptionError>(m, "CorruptionError", error.ptr())},
  };
  py::list error_kinds(kinds.size());
  for (auto& [kind, cls] : kinds) error_kinds[static_cast<size_t>(kind)] = cls;
  m.attr("error_kinds") = py::tuple(error_kinds);

  py::class_<tessera::Store>(m, "Store")
      .def(py::init([](const std::string& path, bool read_only, bool create) {
             py::gil_scoped_release nogil;
             if (read_only) return tessera::Store::open_read_only(path);
             tessera::StoreOptions o;
             o.create_if_missing = create;
             return tessera::Store::open(path, o);
           }),
           py::arg("path"), py::arg("read_only") = false, py::arg("create") = false,
           "Opens the store at `path`. Never creates one unless `create` (saves do): a path that holds no "
           "store raises StoreError naming it, and nothing is written there.")
      .def_property_readonly("path", &tessera::Store::path)
      .def_property_readonly("read_only", &tessera::Store::read_only)
      .def(
          "checkpoints",
          [](const tessera::Store& s, bool metadata) {
            py::list out;
            for (const auto& c : s.checkpoints()) {
              py::dict d = summary_dict(c);
              if (!metadata) PyDict_DelItemString(d.ptr(), "metadata");
              out.append(d);
            }
            return out;
          },
          py::arg("metadata") = false,
          "One record per checkpoint, oldest first; its metadata JSON only with metadata=True (it can be large).")
      .def("checkpoint", [](const tessera::Store& s, const std::string& name) { return summary_dict(s.checkpoint(name)); });

  py::class_<PyControlPlane>(m, "ControlPlane")
      .def(py::init<int64_t, int64_t, py::object, py::object, py::object, py::object, py::object>(),
           py::arg("rank"), py::arg("world_size"), py::arg("set"), py::arg("wait_get"), py::arg("add"),
           py::arg("compare_set"), py::arg("delete_key"))
      .def_property_readonly("rank", &PyControlPlane::rank)
      .def_property_readonly("world_size", &PyControlPlane::world_size);

  m.def(
      "describe",
      [](const tessera::Store& store, const std::string& checkpoint) {
        std::vector<tessera::EntryInfo> entries;
        {
          py::gil_scoped_release nogil;
          entries = tessera::describe(store, checkpoint);
        }
        py::list out;
        for (const auto& e : entries) {
          py::dict d;
          d["name"] = e.name;
          d["kind"] = e.kind;
          d["dtype"] = e.dtype;
          d["shape"] = e.shape;
          d["chunks"] = e.chunks;
          d["logical_bytes"] = e.logical_bytes;
          d["stored_bytes"] = e.stored_bytes;
          d["row_starts"] = e.row_starts;
          out.append(d);
        }
        return out;
      },
      py::arg("store"), py::arg("checkpoint"), "Entries of a checkpoint: name, kind, dtype, global shape, ...");

  m.def(
      "save",
      [](tessera::Store& store, const std::string& checkpoint, const py::iterable& entries, const py::kwargs& kw) {
        tessera::StateDict state = to_state(entries);
        tessera::SaveOptions o = save_options(kw);
        tessera::SaveResult r;
        {
          py::gil_scoped_release nogil;
          r = tessera::save(state, store, checkpoint, o);
        }
        return stats_dict(r);
      },
      py::arg("store"), py::arg("checkpoint"), py::arg("entries"), "Single-process save (checkpoint.h).");

  m.def(
      "save_distributed",
      [](PyControlPlane& plane, const std::string& store_path, const std::string& checkpoint,
         const py::iterable& entries, double timeout_seconds, const std::string& failure, int failure_kind,
         const py::kwargs& kw) {
        tessera::StateDict state;
        if (failure.empty()) {
          state = to_state(entries);
        } else {
          // This rank failed before the save (in Python): take part in the
          // protocol with an entry that fails inside it, so that every rank
          // raises this rank's cause, as its class, instead of waiting for it.
          tessera::TensorEntry e;
          e.view.dtype = "uint8";  // a scalar whose staging fails inside the protocol
          e.view.elem_size = 1;
          const auto kind = static_cast<tessera::ErrorKind>(failure_kind);
          e.stage_for_save = [failure, kind]() -> tessera::TensorView { tessera::throw_error(kind, failure); };
          state.add_tensor("(failed before the save)", std::move(e));
        }
        tessera::SaveOptions o = save_options(kw);
        tessera::DistributedOptions d;
        d.timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000));
        tessera::SaveResult r;
        {
          py::gil_scoped_release nogil;
          r = tessera::save(state, store_path, checkpoint, plane, o, d);
        }
        return stats_dict(r);
      },
      py::arg("plane"), py::arg("store_path"), py::arg("checkpoint"), py::arg("entries"),
      py::arg("timeout_seconds") = 300.0, py::arg("failure") = "", py::arg("failure_kind") = 0,
      "Collective save over a control plane (distributed.h). A non-empty `failure` makes the save fail on "
      "every rank with that cause, raised as error_kinds[failure_kind] (for a rank that failed before it could "
      "describe its entries).");

  m.def(
      "write_part",
      [](tessera::Store& store, const py::iterable& entries, int64_t rank, const py::kwargs& kw) {
        tessera::StateDict state = to_state(entries);
        tessera::SaveOptions o = save_options(kw);
        tessera::SavedPart part;
        {
          py::gil_scoped_release nogil;
          part = tessera::write_part(state, store, o, rank);
        }
        return py::make_tuple(py::bytes(part.manifest), stats_dict(part.stats));
      },
      py::arg("store"), py::arg("entries"), py::arg("rank") = 0, "First phase of a save (parts.h).");

  m.def(
      "commit_parts",
      [](tessera::Store& store, const std::string& checkpoint, const std::vector<py::bytes>& manifests,
         const py::kwargs& kw) {
        std::vector<std::string> blobs;
        for (const auto& b : manifests) blobs.push_back(b.cast<std::string>());
        tessera::SaveOptions o = save_options(kw);
        tessera::SaveResult r;
        {
          py::gil_scoped_release nogil;
          r = tessera::commit_parts(store, checkpoint, blobs, o);
        }
        return stats_dict(r);
      },
      py::arg("store"), py::arg("checkpoint"), py::arg("manifests"), "Second phase of a save (parts.h).");

  m.def(
      "discard_part",
      [](tessera::Store& store, const py::bytes& manifest) {
        std::string blob = manifest;
        py::gil_scoped_release nogil;
        tessera::discard_part(store, blob);
      },
      py::arg("store"), py::arg("manifest"));

  m.def(
      "load",
      [](const tessera::Store& store, const std::string& checkpoint, const py::iterable& entries, bool strict,
         bool verify, int64_t threads, uint64_t max_staging_bytes, const py::object& progress) {
        tessera::StateDict state = to_state(entries);
        tessera::LoadOptions o;
        o.strict = strict;
        o.verify = verify;
        o.progress = progress_fn(progress);
        o.threads = checked_threads(threads);
        if (max_staging_bytes > 0) o.max_staging_bytes = max_staging_bytes;
        tessera::LoadResult r;
        {
          py::gil_scoped_release nogil;
          r = tessera::load(state, store, checkpoint, o);
        }
        py::dict d, values;
        d["missing_keys"] = r.missing_keys;
        d["unexpected_keys"] = r.unexpected_keys;
        d["bytes_read"] = r.bytes_read;
        d["chunks_read"] = r.chunks_read;
        for (const auto& [name, entry] : state.entries())
          if (auto* v = std::get_if<tessera::Value>(&entry)) values[py::str(name)] = from_value(*v);
        d["values"] = values;
        return d;
      },
      py::arg("store"), py::arg("checkpoint"), py::arg("entries"), py::arg("strict") = true, py::arg("verify") = true,
      py::arg("threads") = 0, py::arg("max_staging_bytes") = 0, py::arg("progress") = py::none(),
      "Fills the described tensors in place (checkpoint.h); staged entries in waves of at most "
      "max_staging_bytes (0: the library's default). progress: f(operation, done, total, seconds, finished).");
  tessera_py::bind_tools(m);  // verify, diff, rm, gc, export (_core_tools.cc)
}
