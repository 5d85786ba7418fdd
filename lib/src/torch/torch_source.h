// TorchSource: the TensorSource (tessera/tensor_source.h) behind every entry
// built from an at::Tensor. It owns the tensor and, while a save or load
// needs them, its host staging: pinned host memory for a device tensor, and a
// host tensor in the saved dtype for a cast. entry_tensor (tessera/torch.h)
// finds the tensor through it.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

#include "tessera/tensor_source.h"

namespace tessera {

class TorchSource : public TensorSource {
 public:
  // `tensor` as the box at `offsets` of a global tensor of `global_shape`.
  // Throws InvalidArgument for undefined, sparse, quantized or otherwise
  // unsupported tensors.
  TorchSource(at::Tensor tensor, Shape global_shape, Shape offsets);

  const at::Tensor& tensor() const { return tensor_; }
  // The entry's view: the tensor's own memory on the CPU; for a device
  // tensor its geometry without data (contiguous strides, as its staging).
  TensorView entry_view() const;

  // Device tensors are staged; CPU tensors are read and written in place.
  bool staged() const override;
  bool can_cast() const override { return true; }
  // Copies the device tensor into pinned host staging (blocking).
  TensorView host_view_for_save() override;
  // Gives the staging back to PyTorch's caching host allocator.
  void saved() override;
  // Pinned staging in the tensor's dtype, or (a cast) a host tensor in the
  // saved dtype.
  TensorView host_target_for_load(const std::string& saved_dtype) override;
  // Copies the staging into the tensor: converting when `cast`; queued on
  // the current stream from pinned memory otherwise (it overlaps the next
  // wave's reads).
  void loaded(bool cast) override;

 private:
  TensorView view_of(const at::Tensor& t) const;

  at::Tensor tensor_;
  Shape global_shape_, offsets_;
  at::Tensor host_;       // device tensors: pinned host staging while a save or load needs it
  at::Tensor cast_host_;  // the load's staging in the saved dtype
};

// The entry for `source`'s tensor, with `source` behind it (not replicated).
TensorEntry entry_of(std::shared_ptr<TorchSource> source);

}  // namespace tessera
