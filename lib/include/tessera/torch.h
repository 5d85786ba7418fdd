// LibTorch tensors as state-dict entries. Include this (and link
// tessera_torch) to save and load at::Tensor directly:
//
//   tessera::StateDict sd;
//   tessera::add_tensor(sd, "model.w", w);                    // whole tensor
//   tessera::add_shard(sd, "model.v", v_local, {8192, 2048}, {4096, 0});  // a shard
//   tessera::save(sd, store, "step-100");
//
// Tensors may be of any dtype LibTorch has (quantized types excepted), 0-D to
// N-D, with any strides, on the CPU or a CUDA device. CUDA tensors are staged
// through pinned host memory: copied device-to-host when a save reads them,
// host-to-device after a load has verified their bytes (the entries'
// TensorSource, tessera/tensor_source.h, does both). With
// LoadOptions::allow_cast, a saved dtype that differs from the target's is
// converted by LibTorch (`copy_`).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "tessera/state_dict.h"

namespace tessera {

// LibTorch's (Python's) name of a dtype: "float32", "bfloat16", "int64", ...
std::string dtype_name(c10::ScalarType type);
// The inverse; throws InvalidArgument for an unknown name.
c10::ScalarType scalar_type_from_name(const std::string& name);

// An entry for the whole of `tensor`. Throws InvalidArgument for undefined,
// sparse, quantized or otherwise unsupported tensors.
TensorEntry tensor_entry(const at::Tensor& tensor);
// An entry for `local`, the box at `offsets` of a global tensor of
// `global_shape`.
TensorEntry shard_entry(const at::Tensor& local, Shape global_shape, Shape offsets);

// The tensor an entry describes: the at::Tensor it was built from (entries
// from this header and tessera/module.h, whose TensorSource holds it), else a
// CPU tensor over its host view's memory. Throws InvalidArgument naming
// `name` for a view without data.
at::Tensor entry_tensor(const std::string& name, const TensorEntry& entry);

void add_tensor(StateDict& state, const std::string& name, const at::Tensor& tensor);
// `replica_index` of `replica_count`: for boxes that several ranks hold (see
// TensorView::replica_count); each chunk is then written by one of them.
void add_shard(StateDict& state, const std::string& name, const at::Tensor& local, Shape global_shape,
               Shape offsets, int64_t replica_index = 0, int64_t replica_count = 1);

}  // namespace tessera
