// tessera._core: the Python binding over the LibTorch-free core library.
//
// Tensors cross the boundary as plain descriptions, never as torch objects,
// so this file needs no LibTorch headers (it compiles in seconds). Entries
// are built by keyword (see _core.pyi):
//
//   TensorDesc(name=, data_ptr=, dtype=, elem_size=, sizes=, strides=,
//              global_shape=None, offsets=None, replica_index=0, replica_count=1)
//   StagedDesc(name=, dtype=, elem_size=, sizes=, global_shape=None, offsets=None,
//              replica_index=0, replica_count=1, acquire=, release=)
//   ValueDesc(name=, value=)        value: int | float | str | bytes
//
// global_shape None is the tensor's own shape, offsets None all zeros.
// data_ptr is the address of the local element at index 0 of a CPU tensor
// that the caller keeps alive (and, for loads, writable) for the call. For
// loads a value entry's value is a template of the expected kind; the loaded
// values come back in the result's `values` dict.
//
// A staged entry has no host bytes of its own (a CUDA tensor): its bytes
// pass through a contiguous host buffer that Python provides when they
// move. acquire() -> data_ptr returns that buffer, filled for a save
// (TensorSource::host_view_for_save; called lazily from a worker thread) or
// to be filled for a load (host_target_for_load); release(cast: bool) is
// called once the buffer is no longer needed (saved; for a load, loaded: the
// bytes have landed and may be copied to the device).
//
// Results are typed records (_core_records.h): SaveResult, LoadResult,
// CheckpointSummary, EntryInfo here; the tools' in _core_tools.cc.
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
#include <tuple>
#include <utility>
#include <vector>

#include "tessera/checkpoint.h"
#include "tessera/compression.h"
#include "tessera/distributed.h"
#include "tessera/error.h"
#include "tessera/inspect.h"
#include "tessera/parts.h"
#include "tessera/replicas.h"
#include "tessera/state_dict.h"
#include "tessera/store.h"
#include "tessera/tensor_source.h"
#include "_core_records.h"
#include "_core_tools.h"

namespace py = pybind11;

namespace {

using tessera::Shape;

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

}  // namespace

namespace tessera_py {

// The entry descriptions (see the top of the file), as Python builds them.
struct TensorDesc {
  std::string name;
  uintptr_t data_ptr = 0;
  std::string dtype;
  size_t elem_size = 0;
  Shape sizes, strides, global_shape, offsets;
  int64_t replica_index = 0, replica_count = 1;
};

struct StagedDesc {
  std::string name, dtype;
  size_t elem_size = 0;
  Shape sizes, global_shape, offsets;
  int64_t replica_index = 0, replica_count = 1;
  py::object acquire, release;
};

struct ValueDesc {
  std::string name;
  tessera::Value value;
};

// The records of _core.cc (see _core_records.h); the tools' are in _core_tools.cc.
struct LoadResult {
  std::vector<std::string> missing_keys, unexpected_keys;
  uint64_t bytes_read = 0, chunks_read = 0;
  py::dict values;
};

struct CheckpointSummary {
  std::string name, created_at;
  int64_t world_size = 1, tensors = 0, values = 0, logical_bytes = 0, stored_bytes = 0, added_bytes = 0;
  std::optional<std::string> metadata;  // None: not read (Store.checkpoints(metadata=False))
};

}  // namespace tessera_py

namespace {

using tessera_py::StagedDesc;
using tessera_py::TensorDesc;
using tessera_py::ValueDesc;

// A StagedDesc's source: acquire() gives the host buffer for a save or a load
// (the view's geometry with a new address), release(cast) gives it back.
class PySource : public tessera::TensorSource {
 public:
  PySource(const std::string& name, tessera::TensorView base, const StagedDesc& d)
      : base_(std::move(base)),
        acquire_("tensor '" + name + "': staging", d.acquire),
        release_("tensor '" + name + "': staging", d.release) {}

  bool staged() const override { return true; }
  tessera::TensorView host_view_for_save() override { return host_view(); }
  // Must not throw (tessera/tensor_source.h): what release raises goes to
  // sys.unraisablehook, as a progress callback's does.
  void saved() override {
    try {
      release_.call(false);
    } catch (const std::exception& e) {
      py::gil_scoped_acquire gil;
      PyErr_SetString(PyExc_RuntimeError, e.what());
      PyErr_WriteUnraisable(nullptr);
    }
  }
  tessera::TensorView host_target_for_load(const std::string&) override { return host_view(); }
  void loaded(bool cast) override { release_.call(cast); }

 private:
  tessera::TensorView host_view() {  // the buffer is contiguous: only its address is new
    return acquire_.call_and([&](const py::object& r) {
      tessera::TensorView h = base_;
      h.data = reinterpret_cast<std::byte*>(r.cast<uintptr_t>());
      return h;
    });
  }

  tessera::TensorView base_;
  PyCallback acquire_, release_;
};

tessera::TensorEntry staged_entry(const StagedDesc& d) {
  tessera::TensorEntry e;
  tessera::TensorView& v = e.view;
  v.dtype = d.dtype;
  v.elem_size = d.elem_size;
  v.sizes = d.sizes;
  v.strides = tessera::TensorView::contiguous(v.dtype, v.elem_size, nullptr, v.sizes).strides;
  v.global_shape = d.global_shape;
  v.offsets = d.offsets;
  v.replica_index = d.replica_index;
  v.replica_count = d.replica_count;
  e.source = std::make_shared<PySource>(d.name, v, d);
  return e;
}

// Adds one entry description (see the top of the file) to `state`.
void add_entry(tessera::StateDict& state, const py::handle& entry) {
  if (py::isinstance<ValueDesc>(entry)) {
    const auto& d = entry.cast<const ValueDesc&>();
    state.add_value(d.name, d.value);
  } else if (py::isinstance<StagedDesc>(entry)) {
    const auto& d = entry.cast<const StagedDesc&>();
    state.add_tensor(d.name, staged_entry(d));
  } else if (py::isinstance<TensorDesc>(entry)) {
    const auto& d = entry.cast<const TensorDesc&>();
    tessera::TensorView v;
    v.data = reinterpret_cast<std::byte*>(d.data_ptr);
    v.dtype = d.dtype;
    v.elem_size = d.elem_size;
    v.sizes = d.sizes;
    v.strides = d.strides;
    v.global_shape = d.global_shape;
    v.offsets = d.offsets;
    v.replica_index = d.replica_index;
    v.replica_count = d.replica_count;
    state.add_tensor(d.name, std::move(v));
  } else {
    throw tessera::InvalidArgument("an entry must be a TensorDesc, StagedDesc or ValueDesc, got " +
                                   py::str(py::type::of(entry)).cast<std::string>());
  }
}

tessera::StateDict to_state(const py::iterable& entries) {
  tessera::StateDict state;
  for (auto e : entries) add_entry(state, e);
  return state;
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
    else if (key == "compression") o.compression = tessera::parse_compression(v.cast<std::string>());
    else if (key == "dedup") o.dedup = v.cast<bool>();
    else if (key == "threads") o.threads = checked_threads(v.cast<int64_t>());
    else if (key == "metadata") o.metadata = v.cast<std::string>();
    else if (key == "keep_last") o.keep_last = v.cast<int64_t>();
    else if (key == "overwrite") o.overwrite = v.cast<bool>();
    else if (key == "progress") o.progress = progress_fn(py::reinterpret_borrow<py::object>(v));
    else throw tessera::InvalidArgument("unknown save option '" + key + "'");
  }
  return o;
}

tessera_py::CheckpointSummary summary_of(const tessera::CheckpointSummary& s, bool metadata) {
  tessera_py::CheckpointSummary out;
  out.name = s.name;
  out.created_at = s.created_at;
  out.world_size = s.world_size;
  out.tensors = s.tensors;
  out.values = s.values;
  out.logical_bytes = s.logical_bytes;
  out.stored_bytes = s.stored_bytes;
  out.added_bytes = s.added_bytes;
  if (metadata) out.metadata = s.metadata;
  return out;
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

  // The names the `compression` save option accepts (tessera/compression.h), in order.
  py::list compressions;
  for (tessera::Compression c : tessera::kCompressions) compressions.append(tessera::to_string(c));
  m.attr("COMPRESSIONS") = py::tuple(compressions);

  // Entry descriptions (see the top of the file), built by keyword.
  using OptShape = std::optional<Shape>;
  auto box_of = [](const Shape& sizes, const OptShape& global_shape, const OptShape& offsets) {
    return std::make_pair(global_shape ? *global_shape : sizes, offsets ? *offsets : Shape(sizes.size(), 0));
  };
  py::class_<TensorDesc>(m, "TensorDesc",
                         "A CPU tensor's bytes in place: data_ptr is the address of its element at index 0 (the "
                         "caller keeps the tensor alive, and writable for a load, for the call). global_shape "
                         "None: its own shape; offsets None: the origin.")
      .def(py::init([box_of](std::string name, uintptr_t data_ptr, std::string dtype, size_t elem_size, Shape sizes,
                             Shape strides, const OptShape& global_shape, const OptShape& offsets,
                             int64_t replica_index, int64_t replica_count) {
             TensorDesc d;
             d.name = std::move(name);
             d.data_ptr = data_ptr;
             d.dtype = std::move(dtype);
             d.elem_size = elem_size;
             d.sizes = std::move(sizes);
             d.strides = std::move(strides);
             std::tie(d.global_shape, d.offsets) = box_of(d.sizes, global_shape, offsets);
             d.replica_index = replica_index;
             d.replica_count = replica_count;
             return d;
           }),
           py::kw_only(), py::arg("name"), py::arg("data_ptr"), py::arg("dtype"), py::arg("elem_size"),
           py::arg("sizes"), py::arg("strides"), py::arg("global_shape") = py::none(),
           py::arg("offsets") = py::none(), py::arg("replica_index") = 0, py::arg("replica_count") = 1)
      .def_readonly("name", &TensorDesc::name)
      .def_readonly("data_ptr", &TensorDesc::data_ptr)
      .def_readonly("dtype", &TensorDesc::dtype)
      .def_readonly("elem_size", &TensorDesc::elem_size)
      .def_readonly("sizes", &TensorDesc::sizes)
      .def_readonly("strides", &TensorDesc::strides)
      .def_readonly("global_shape", &TensorDesc::global_shape)
      .def_readonly("offsets", &TensorDesc::offsets)
      .def_readonly("replica_index", &TensorDesc::replica_index)
      .def_readonly("replica_count", &TensorDesc::replica_count)
      .def("__repr__", [](const TensorDesc& d) {
        return "TensorDesc(name=" + py::repr(py::str(d.name)).cast<std::string>() + ", dtype=" + d.dtype +
               ", sizes=" + py::repr(py::cast(d.sizes)).cast<std::string>() + ")";
      });
  py::class_<StagedDesc>(m, "StagedDesc",
                         "A tensor without host bytes of its own (a CUDA tensor), staged through a contiguous "
                         "host buffer when its bytes move: acquire() -> data_ptr of that buffer (filled, for a "
                         "save), release(cast: bool) once it is no longer needed (see _core.cc).")
      .def(py::init([box_of](std::string name, std::string dtype, size_t elem_size, Shape sizes,
                             const OptShape& global_shape, const OptShape& offsets, int64_t replica_index,
                             int64_t replica_count, py::function acquire, py::function release) {
             StagedDesc d;
             d.name = std::move(name);
             d.dtype = std::move(dtype);
             d.elem_size = elem_size;
             d.sizes = std::move(sizes);
             std::tie(d.global_shape, d.offsets) = box_of(d.sizes, global_shape, offsets);
             d.replica_index = replica_index;
             d.replica_count = replica_count;
             d.acquire = std::move(acquire);
             d.release = std::move(release);
             return d;
           }),
           py::kw_only(), py::arg("name"), py::arg("dtype"), py::arg("elem_size"), py::arg("sizes"),
           py::arg("global_shape") = py::none(), py::arg("offsets") = py::none(), py::arg("replica_index") = 0,
           py::arg("replica_count") = 1, py::arg("acquire"), py::arg("release"))
      .def_readonly("name", &StagedDesc::name)
      .def_readonly("dtype", &StagedDesc::dtype)
      .def_readonly("elem_size", &StagedDesc::elem_size)
      .def_readonly("sizes", &StagedDesc::sizes)
      .def_readonly("global_shape", &StagedDesc::global_shape)
      .def_readonly("offsets", &StagedDesc::offsets)
      .def_readonly("replica_index", &StagedDesc::replica_index)
      .def_readonly("replica_count", &StagedDesc::replica_count)
      .def("__repr__", [](const StagedDesc& d) {
        return "StagedDesc(name=" + py::repr(py::str(d.name)).cast<std::string>() + ", dtype=" + d.dtype +
               ", sizes=" + py::repr(py::cast(d.sizes)).cast<std::string>() + ")";
      });
  py::class_<ValueDesc>(m, "ValueDesc",
                        "A value: int (64-bit), float, str or bytes (bool is refused: encode it first). For a load, "
                        "a template of the kind expected.")
      .def(py::init([](std::string name, const py::object& value) {
             tessera::Value v = to_value(name, value);
             return ValueDesc{std::move(name), std::move(v)};
           }),
           py::kw_only(), py::arg("name"), py::arg("value"))
      .def_readonly("name", &ValueDesc::name)
      .def_property_readonly("value", [](const ValueDesc& d) { return from_value(d.value); })
      .def("__repr__", [](const ValueDesc& d) {
        return "ValueDesc(name=" + py::repr(py::str(d.name)).cast<std::string>() +
               ", value=" + py::repr(from_value(d.value)).cast<std::string>() + ")";
      });

  // Results (see _core_records.h).
  tessera_py::Record<tessera::SaveResult>(m, "SaveResult", "What a save (or one rank's part of it) wrote.")
      .field("logical_bytes", &tessera::SaveResult::logical_bytes, "raw bytes of every tensor piece saved")
      .field("written_bytes", &tessera::SaveResult::written_bytes, "stored bytes written into new packs")
      .field("chunks", &tessera::SaveResult::chunks, "chunk references recorded")
      .field("chunks_written", &tessera::SaveResult::chunks_written, "of which written now (the rest deduplicated)")
      .field("packs", &tessera::SaveResult::packs, "packs written")
      .field("removed", &tessera::SaveResult::removed,
             "checkpoints keep_last removed, oldest first (the committing rank only)")
      .field("freed_bytes", &tessera::SaveResult::freed_bytes,
             "bytes of packs deleted after that removal (the committing rank only)")
      .done();
  using tessera_py::LoadResult;
  tessera_py::Record<LoadResult>(m, "LoadResult", "What a load read (this rank's reads).")
      .field("missing_keys", &LoadResult::missing_keys, "asked for, not in the checkpoint (strict=False)")
      .field("unexpected_keys", &LoadResult::unexpected_keys, "in the checkpoint, not asked for")
      .field("bytes_read", &LoadResult::bytes_read, "bytes read from packs")
      .field("chunks_read", &LoadResult::chunks_read, "chunk reads")
      .field("values", &LoadResult::values,
             "_core.load: the loaded values by name (tessera.load puts them into the state dict: empty there)")
      .done();
  using Summary = tessera_py::CheckpointSummary;
  tessera_py::Record<Summary>(m, "CheckpointSummary", "One checkpoint of a store (`tessera ls`).")
      .field("name", &Summary::name)
      .field("created_at", &Summary::created_at, "ISO 8601 UTC")
      .field("world_size", &Summary::world_size)
      .field("tensors", &Summary::tensors)
      .field("values", &Summary::values)
      .field("logical_bytes", &Summary::logical_bytes, "raw bytes of all tensors")
      .field("stored_bytes", &Summary::stored_bytes, "stored bytes of the distinct chunks it references")
      .field("added_bytes", &Summary::added_bytes, "of which no earlier checkpoint referenced")
      .field("metadata", &Summary::metadata,
             "the metadata JSON; None where not read (Store.checkpoints() without metadata=True)")
      .done();
  tessera_py::Record<tessera::EntryInfo>(m, "EntryInfo", "One entry of a checkpoint (`tessera show`).")
      .field("name", &tessera::EntryInfo::name)
      .field("kind", &tessera::EntryInfo::kind, "\"tensor\", or a value kind: \"int\", \"float\", \"string\", \"bytes\"")
      .field("dtype", &tessera::EntryInfo::dtype, "tensors only")
      .field("shape", &tessera::EntryInfo::shape, "tensors only: the global shape")
      .field("chunks", &tessera::EntryInfo::chunks, "tensors only: chunk references")
      .field("logical_bytes", &tessera::EntryInfo::logical_bytes, "tensors: raw bytes; values: size of the value")
      .field("stored_bytes", &tessera::EntryInfo::stored_bytes, "tensors: stored bytes of the distinct chunks")
      .field("value", &tessera::EntryInfo::value, "values only: printable form (bytes as a length)")
      .field("shared_with_previous", &tessera::EntryInfo::shared_with_previous,
             "tensors only: the previous checkpoint has the same boxes and chunks")
      .field("row_starts", &tessera::EntryInfo::row_starts,
             "tensors: the dimension-0 offsets at which stored pieces start, ascending")
      .done();

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
            std::vector<tessera_py::CheckpointSummary> out;
            for (const auto& c : s.checkpoints()) out.push_back(summary_of(c, metadata));
            return out;
          },
          py::arg("metadata") = false,
          "One record per checkpoint, oldest first; its metadata JSON only with metadata=True (it can be large).")
      .def(
          "checkpoint",
          [](const tessera::Store& s, const std::string& name) { return summary_of(s.checkpoint(name), true); },
          py::arg("name"), "The checkpoint's record, its metadata JSON included. Throws NotFoundError.");

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
        return entries;
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
        return r;
      },
      py::arg("store"), py::arg("checkpoint"), py::arg("entries"), "Single-process save (checkpoint.h).");

  m.def(
      "agree_failures",
      [](const std::vector<std::optional<int64_t>>& kinds) {
        std::vector<int64_t> numbers;
        for (const auto& k : kinds) numbers.push_back(k ? *k : -1);
        const tessera::FailureAgreement a = tessera::agree_on_failures(numbers);
        return std::make_pair(a.failed, a.kind);
      },
      py::arg("kinds"),
      "How the ranks fared (distributed.h: agree_on_failures): kinds[r] is None where rank r succeeded, else the ErrorKind number "
      "of its failure. Returns (the failing ranks, lowest first; the lowest one's kind, the class every rank "
      "raises, or -1 when none failed).");

  m.def(
      "plan_replica_reads",
      [](const std::vector<std::tuple<int64_t, int64_t, std::vector<int64_t>, uint64_t, tessera::EntryInfo>>& boxes,
         int64_t ranks) {
        std::vector<tessera::ReplicaBox> plain;
        for (const auto& [begin, end, readers, bytes, saved] : boxes) {
          for (size_t i = 0; i < readers.size(); ++i)
            if (readers[i] < 0 || readers[i] >= ranks || (i > 0 && readers[i] <= readers[i - 1]))
              throw tessera::InvalidArgument("plan_replica_reads: readers must be ascending ranks in [0, " +
                                             std::to_string(ranks) + ")");
          if (readers.empty()) throw tessera::InvalidArgument("plan_replica_reads: a box without readers");
          plain.push_back(tessera::ReplicaBox{begin, end, readers, saved.row_starts, bytes, saved.stored_bytes,
                                              saved.logical_bytes});
        }
        std::vector<std::vector<std::tuple<int64_t, int64_t, int64_t>>> out;
        for (const auto& parts : tessera::plan_replica_reads(plain, ranks)) {
          out.emplace_back();
          for (const auto& p : parts) out.back().emplace_back(p.rows.begin, p.rows.end, p.reader);
        }
        return out;
      },
      py::arg("boxes"), py::arg("ranks"),
      "Who reads which rows of boxes several ranks need (tessera/replicas.h: plan_replica_reads), the rule of the "
      "C++ replicated load. boxes: (begin, end, readers, bytes, saved) each: global dimension-0 rows [begin, end) "
      "([0, 1) for 0-D), the ranks that need the box (ascending), its raw bytes, the saved tensor's EntryInfo (its "
      "row_starts, stored_bytes and logical_bytes count). Returns, per box, (begin, end, reader) ranges "
      "ascending: cut only at chunk edges, at most one per reader, the largest first to the reader with the "
      "fewest stored bytes so far (over all the boxes, in order), ties to the lowest rank.");

  m.def(
      "save_distributed",
      [](PyControlPlane& plane, const std::string& store_path, const std::string& checkpoint,
         const py::iterable& entries, double timeout_seconds, const std::string& failure, int failure_kind,
         const py::kwargs& kw) {
        // Every rank opens the store itself (read-write, created if missing),
        // then takes part in the one save (distributed.h).
        tessera::SaveOptions o = save_options(kw);
        o.plane = &plane;
        o.timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000));
        if (!failure.empty()) {
          // This rank failed before the save (in Python): it abstains, so that
          // every rank raises this rank's cause, as its class, instead of
          // waiting for it.
          py::gil_scoped_release nogil;
          tessera::abstain(static_cast<tessera::ErrorKind>(failure_kind), failure, checkpoint, o);
        }
        const tessera::StateDict state = to_state(entries);
        tessera::SaveResult r;
        {
          py::gil_scoped_release nogil;
          std::optional<tessera::Store> store;
          try {
            store = tessera::Store::open(store_path);
          } catch (const tessera::Error& e) {
            tessera::abstain(tessera::error_kind(e), e.what(), checkpoint, o);  // the others fail with it at once
          }
          r = tessera::save(state, *store, checkpoint, o);
        }
        return r;
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
        return py::make_tuple(py::bytes(part.manifest), part.stats);
      },
      py::arg("store"), py::arg("entries"), py::arg("rank") = 0, "First phase of a save (parts.h).");

  m.def(
      "commit_parts",
      [](tessera::Store& store, const std::string& checkpoint, const std::vector<py::bytes>& manifests,
         int64_t world_size, const py::kwargs& kw) {
        std::vector<std::string> blobs;
        for (const auto& b : manifests) blobs.push_back(b.cast<std::string>());
        tessera::SaveOptions o = save_options(kw);
        tessera::SaveResult r;
        {
          py::gil_scoped_release nogil;
          r = tessera::commit_parts(store, checkpoint, blobs, world_size, o);
        }
        return r;
      },
      py::arg("store"), py::arg("checkpoint"), py::arg("manifests"), py::arg("world_size"),
      "Second phase of a save (parts.h).");

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
        LoadResult out;
        out.missing_keys = std::move(r.missing_keys);
        out.unexpected_keys = std::move(r.unexpected_keys);
        out.bytes_read = r.bytes_read;
        out.chunks_read = r.chunks_read;
        for (const auto& [name, entry] : state.entries())
          if (auto* v = std::get_if<tessera::Value>(&entry)) out.values[py::str(name)] = from_value(*v);
        return out;
      },
      py::arg("store"), py::arg("checkpoint"), py::arg("entries"), py::arg("strict") = true, py::arg("verify") = true,
      py::arg("threads") = 0, py::arg("max_staging_bytes") = 0, py::arg("progress") = py::none(),
      "Fills the described tensors in place (checkpoint.h); staged entries in waves of at most "
      "max_staging_bytes (0: the library's default). progress: f(operation, done, total, seconds, finished).");
  tessera_py::bind_tools(m);  // verify, diff, rm, gc, export (_core_tools.cc)
}
