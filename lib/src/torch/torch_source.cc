// TorchSource: an at::Tensor behind a state-dict entry (torch_source.h).
#include "torch/torch_source.h"

#include <ATen/ATen.h>
#include <c10/util/strides.h>

#include "tessera/error.h"
#include "tessera/torch.h"

namespace tessera {
namespace {

Shape to_shape(c10::IntArrayRef r) { return Shape(r.begin(), r.end()); }

at::Tensor host_staging(const at::Tensor& like, c10::ScalarType dtype) {
  auto options = at::TensorOptions().dtype(dtype).device(at::kCPU);
  if (like.is_cuda()) options = options.pinned_memory(true);
  return at::empty(like.sizes(), options);
}

}  // namespace

TorchSource::TorchSource(at::Tensor tensor, Shape global_shape, Shape offsets)
    : tensor_(std::move(tensor)), global_shape_(std::move(global_shape)), offsets_(std::move(offsets)) {
  if (!tensor_.defined()) throw InvalidArgument("undefined tensor");
  if (tensor_.is_quantized() || tensor_.layout() != at::kStrided)
    throw InvalidArgument("tensors of layout " + c10::str(tensor_.layout()) + " and dtype " +
                          dtype_name(tensor_.scalar_type()) + " are not supported (dense, non-quantized only)");
}

TensorView TorchSource::view_of(const at::Tensor& t) const {
  TensorView v;
  v.dtype = dtype_name(t.scalar_type());
  v.elem_size = t.element_size();
  v.data = t.numel() > 0 ? static_cast<std::byte*>(t.data_ptr()) : nullptr;
  v.sizes = to_shape(t.sizes());
  v.strides = to_shape(t.strides());
  v.global_shape = global_shape_;
  v.offsets = offsets_;
  return v;
}

TensorView TorchSource::entry_view() const {
  TensorView v = view_of(tensor_);
  if (staged()) {  // not host-addressable: described here, staged only when a save or load needs the bytes
    v.data = nullptr;
    v.strides = to_shape(c10::contiguous_strides(tensor_.sizes()));
  }
  return v;
}

bool TorchSource::staged() const { return !tensor_.device().is_cpu(); }

TensorView TorchSource::host_view_for_save() {
  if (!host_.defined()) host_ = host_staging(tensor_, tensor_.scalar_type());
  host_.copy_(tensor_);
  return view_of(host_);
}

void TorchSource::saved() { host_.reset(); }  // back to PyTorch's caching host allocator

TensorView TorchSource::host_target_for_load(const std::string& saved_dtype) {
  if (saved_dtype != dtype_name(tensor_.scalar_type())) {
    cast_host_ = host_staging(tensor_, scalar_type_from_name(saved_dtype));
    return view_of(cast_host_);
  }
  if (!host_.defined()) host_ = host_staging(tensor_, tensor_.scalar_type());
  return view_of(host_);
}

void TorchSource::loaded(bool cast) {
  if (cast) {
    tensor_.copy_(cast_host_);  // converts dtype (and moves to the device)
    cast_host_.reset();
  } else if (host_.defined()) {
    // Queued on the current stream from pinned memory: overlaps the next
    // wave's reads. PyTorch's caching host allocator keeps the staging
    // block from reuse until the copy has run.
    tensor_.copy_(host_, /*non_blocking=*/tensor_.is_cuda());
    host_.reset();
  }
}

TensorEntry entry_of(std::shared_ptr<TorchSource> source) {
  TensorEntry e;
  e.view = source->entry_view();
  e.source = std::move(source);
  return e;
}

}  // namespace tessera
