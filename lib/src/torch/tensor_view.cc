// Entries from at::Tensor (tessera/torch.h): dtype names, entry builders and
// entry_tensor. The staging behind the entries is TorchSource (torch_source.h).
#include <ATen/ATen.h>
#include <c10/util/accumulate.h>

#include <array>

#include "tessera/error.h"
#include "tessera/torch.h"
#include "torch/torch_source.h"

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
  return entry_of(std::make_shared<TorchSource>(local, std::move(global_shape), std::move(offsets)));
}

at::Tensor entry_tensor(const std::string& name, const TensorEntry& entry) {
  if (const auto* source = dynamic_cast<const TorchSource*>(entry.source.get())) return source->tensor();
  const TensorView& v = entry.view;
  if (c10::multiply_integers(v.sizes) > 0 && v.data == nullptr)
    throw InvalidArgument("tensor '" + name + "': no data and no source tensor");
  return at::from_blob(v.data, v.sizes, v.strides, at::TensorOptions().dtype(scalar_type_from_name(v.dtype)));
}

TensorEntry tensor_entry(const at::Tensor& tensor) {
  if (!tensor.defined()) throw InvalidArgument("undefined tensor");
  Shape shape(tensor.sizes().begin(), tensor.sizes().end());
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
