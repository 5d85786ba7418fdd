// Helpers shared by the LibTorch test suites (include before doctest, as the
// torch headers; see toolchain.md).
#pragma once

#include <ATen/ATen.h>

#include <cstring>

namespace tessera::test {

// Whether `a` and `b` are defined and hold the same shape, dtype and bytes
// (bits, not values: NaNs compare equal to themselves, -0 differs from 0),
// wherever each lives.
inline bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  if (!a.defined() || !b.defined()) return false;
  if (a.sizes() != b.sizes() || a.scalar_type() != b.scalar_type()) return false;
  at::Tensor x = a.detach().cpu().contiguous(), y = b.detach().cpu().contiguous();
  return std::memcmp(x.data_ptr(), y.data_ptr(), x.numel() * x.element_size()) == 0;
}

}  // namespace tessera::test
