#include <ATen/ATen.h>
#include <c10/util/accumulate.h>
#include <c10/util/strides.h>

#include <array>

#include "tessera/error.h"
#include "tessera/torch.h"

namespace tessera {
namespace {

// Python's names, indexed by c10::ScalarType (see AT_FORALL_SCALAR_TYPES_WITH_COMPLEX_AND_QINTS).
constexpr std::array<const char*, 46> kNames = {
    "uint8",    "int8",      "int16",       "int32",        "int64",           "float16",         "float32",
    "float64",  "complex32", "complex64",   "complex128",   "bool",            "qint8",           "quint8",
    "qint32",   "bfloat16",  "quint4x2",    "quint2x4",     "bits1x8",         "bits2x4",         "bits4x2",
    "bits8",    "bits16",    "float8_e5m2", "float8_e4m3fn", "float8_e5m2fnuz", "float8_e4m3fnuz", "uint16",
    "uint32",   "uint64",    "uint1",       "uint2",        "uint3",           "uint4",           "uint5",
    "uint6",    "uint7",     "int1",        "int2",         "int3",            "int4",            "int5",
    "int6",     "int7",      "float8_e8m0fnu", "float4_e2m1fn_x2"};

Shape to_shape(c10::IntArrayRef r) { return Shape(r.begin(), r.end()); }

// A tensor and, when it is not addressable on the host or must be converted,
// the host tensor whose bytes tessera reads and writes.
struct Binding {
  at::Tensor target;
  at::Tensor host;       // device tensors: pinned host staging; undefined for CPU tensors
  at::Tensor cast_host;  // the last load's staging in the saved dtype
};

TensorView view_of(const at::Tensor& t, Shape global_shape, Shape offsets) {
  TensorView v;
  v.dtype = dtype_name(t.scalar_type());
  v.elem_size = t.element_size();
  v.data = t.numel() > 0 ? static_cast<std::byte*>(t.data_ptr()) : nullptr;
  v.sizes = to_shape(t.sizes());
  v.strides = to_shape(t.strides());
  v.global_shape = std::move(global_shape);
  v.offsets = std::move(offsets);
  return v;
}

at::Tensor host_staging(const at::Tensor& like, c10::ScalarType dtype) {
  auto options = at::TensorOptions().dtype(dtype).device(at::kCPU);
  if (like.is_cuda()) options = options.pinned_memory(true);
  return at::empty(like.sizes(), options);
}

}  // namespace

std::string dtype_name(c10::ScalarType type) {
  auto i = static_cast<size_t>(type);
  if (i < kNames.size()) return kNames[i];
  throw InvalidArgument(std::string("unsupported dtype ") + c10::toString(type));
}

c10::ScalarType scalar_type_from_name(const std::string& name) {
  for (size_t i = 0; i < kNames.size(); ++i)
    if (name == kNames[i]) return static_cast<c10::ScalarType>(i);
  throw InvalidArgument("unknown dtype '" + name + "'");
}

TensorEntry shard_entry(const at::Tensor& local, Shape global_shape, Shape offsets) {
  if (!local.defined()) throw InvalidArgument("undefined tensor");
  if (local.is_quantized() || local.layout() != at::kStrided)
    throw InvalidArgument("tensors of layout " + c10::str(local.layout()) + " and dtype " +
                          dtype_name(local.scalar_type()) + " are not supported (dense, non-quantized only)");
  auto b = std::make_shared<Binding>();
  b->target = local;
  TensorEntry e;
  e.source = local;
  if (local.device().is_cpu()) {
    e.view = view_of(local, std::move(global_shape), std::move(offsets));
  } else {
    // Not host-addressable: described here, staged through pinned host
    // memory only when a save or load needs the bytes.
    e.view = view_of(local, std::move(global_shape), std::move(offsets));
    e.view.data = nullptr;
    e.view.strides = to_shape(c10::contiguous_strides(local.sizes()));
    e.stage_for_save = [b, base = e.view] {
      if (!b->host.defined()) b->host = host_staging(b->target, b->target.scalar_type());
      b->host.copy_(b->target);
      return view_of(b->host, base.global_shape, base.offsets);
    };
    e.after_save = [b] { b->host.reset(); };  // back to PyTorch's caching host allocator
    e.load_target = [b, base = e.view] {
      if (!b->host.defined()) b->host = host_staging(b->target, b->target.scalar_type());
      return view_of(b->host, base.global_shape, base.offsets);
    };
  }
  e.finish_load = [b](bool cast) {
    if (cast) {
      b->target.copy_(b->cast_host);  // converts dtype (and moves to the device)
      b->cast_host.reset();
    } else if (b->host.defined()) {
      // Queued on the current stream from pinned memory: overlaps the next
      // wave's reads. PyTorch's caching host allocator keeps the staging
      // block from reuse until the copy has run.
      b->target.copy_(b->host, /*non_blocking=*/b->target.is_cuda());
      b->host.reset();
    }
  };
  e.cast_target = [b, base = e.view](const std::string& saved_dtype) {
    b->cast_host = host_staging(b->target, scalar_type_from_name(saved_dtype));
    return view_of(b->cast_host, base.global_shape, base.offsets);
  };
  e.keep_alive = b;
  return e;
}

at::Tensor entry_tensor(const std::string& name, const TensorEntry& entry) {
  if (const auto* t = std::any_cast<at::Tensor>(&entry.source)) return *t;
  const TensorView& v = entry.view;
  if (c10::multiply_integers(v.sizes) > 0 && v.data == nullptr)
    throw InvalidArgument("tensor '" + name + "': no data and no source tensor");
  return at::from_blob(v.data, v.sizes, v.strides, at::TensorOptions().dtype(scalar_type_from_name(v.dtype)));
}

TensorEntry tensor_entry(const at::Tensor& tensor) {
  if (!tensor.defined()) throw InvalidArgument("undefined tensor");
  Shape shape = to_shape(tensor.sizes());
  Shape offsets(shape.size(), 0);
  return shard_entry(tensor, std::move(shape), std::move(offsets));
}

void add_tensor(StateDict& state, const std::string& name, const at::Tensor& tensor) {
  try {
    state.add_tensor(name, tensor_entry(tensor));
  } catch (const InvalidArgument& e) {
    throw InvalidArgument("tensor '" + name + "': " + e.what());
  }
}

void add_shard(StateDict& state, const std::string& name, const at::Tensor& local, Shape global_shape,
               Shape offsets, int64_t replica_index, int64_t replica_count) {
  try {
    TensorEntry e = shard_entry(local, std::move(global_shape), std::move(offsets));
    e.view.replica_index = replica_index;
    e.view.replica_count = replica_count;
    state.add_tensor(name, std::move(e));
  } catch (const InvalidArgument& e) {
    throw InvalidArgument("tensor '" + name + "': " + e.what());
  }
}

}  // namespace tessera
