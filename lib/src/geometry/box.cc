#include "geometry/box.h"

#include <algorithm>
#include <cstring>
#include <sstream>
#include <stdexcept>

namespace tessera {

int64_t volume(const Shape& shape) {
  int64_t v = 1;
  for (int64_t s : shape) v *= s;
  return v;
}

int64_t Box::volume() const { return tessera::volume(sizes); }

Box Box::whole(const Shape& shape) { return Box{Shape(shape.size(), 0), shape}; }

std::optional<Box> intersect(const Box& a, const Box& b) {
  if (a.rank() != b.rank()) throw std::logic_error("intersect: rank mismatch");
  Box r{Shape(a.rank()), Shape(a.rank())};
  for (size_t d = 0; d < a.rank(); ++d) {
    int64_t lo = std::max(a.offsets[d], b.offsets[d]);
    int64_t hi = std::min(a.offsets[d] + a.sizes[d], b.offsets[d] + b.sizes[d]);
    if (hi <= lo) return std::nullopt;
    r.offsets[d] = lo;
    r.sizes[d] = hi - lo;
  }
  if (a.empty() || b.empty()) return std::nullopt;
  return r;
}

bool contains(const Box& outer, const Box& inner) {
  if (outer.rank() != inner.rank()) return false;
  for (size_t d = 0; d < outer.rank(); ++d) {
    if (inner.offsets[d] < outer.offsets[d]) return false;
    if (inner.offsets[d] + inner.sizes[d] > outer.offsets[d] + outer.sizes[d]) return false;
  }
  return true;
}

std::string to_string(const Shape& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

std::string to_string(const Box& box) {
  return "offsets " + to_string(box.offsets) + " sizes " + to_string(box.sizes);
}

Shape contiguous_strides(const Shape& sizes) {
  Shape strides(sizes.size());
  int64_t s = 1;
  for (size_t d = sizes.size(); d-- > 0;) {
    strides[d] = s;
    s *= std::max<int64_t>(sizes[d], 1);
  }
  return strides;
}

StridedView StridedView::dense(const Box& box, std::byte* data) {
  return StridedView{box, data, contiguous_strides(box.sizes)};
}

namespace {

std::byte* element_at(const StridedView& v, const Shape& global_index, size_t elem_size) {
  int64_t off = 0;
  for (size_t d = 0; d < global_index.size(); ++d)
    off += (global_index[d] - v.box.offsets[d]) * v.strides[d];
  return v.data + off * static_cast<int64_t>(elem_size);
}

}  // namespace

void copy_region(const Box& region, const StridedView& src, const StridedView& dst,
                 size_t elem_size) {
  if (region.empty()) return;
  if (!contains(src.box, region) || !contains(dst.box, region))
    throw std::logic_error("copy_region: region " + to_string(region) + " outside src " +
                           to_string(src.box) + " or dst " + to_string(dst.box));
  const size_t rank = region.rank();
  std::byte* s0 = element_at(src, region.offsets, elem_size);
  std::byte* d0 = element_at(dst, region.offsets, elem_size);
  if (rank == 0) {
    std::memcpy(d0, s0, elem_size);
    return;
  }
  // Merge the innermost dimensions that are contiguous in both layouts into one run.
  size_t inner = rank;  // dims [inner, rank) form the run
  int64_t run = 1;
  while (inner > 0) {
    size_t d = inner - 1;
    if (region.sizes[d] != 1 && (src.strides[d] != run || dst.strides[d] != run)) break;
    run *= region.sizes[d];
    inner = d;
  }
  if (inner == rank) {  // innermost dim strided in one of the layouts: element runs
    inner = rank - 1;
    run = 1;
  }
  const size_t run_bytes = static_cast<size_t>(run) * elem_size;
  const bool element_wise = (inner == rank - 1) &&
                            (src.strides[rank - 1] != 1 || dst.strides[rank - 1] != 1);
  const int64_t inner_count = element_wise ? region.sizes[rank - 1] : 1;
  const size_t outer = element_wise ? rank - 1 : inner;

  Shape idx(outer, 0);
  const auto e = static_cast<int64_t>(elem_size);
  while (true) {
    int64_t so = 0, dof = 0;
    for (size_t d = 0; d < outer; ++d) {
      so += idx[d] * src.strides[d];
      dof += idx[d] * dst.strides[d];
    }
    if (element_wise) {
      const int64_t ss = src.strides[rank - 1], ds = dst.strides[rank - 1];
      for (int64_t i = 0; i < inner_count; ++i)
        std::memcpy(d0 + (dof + i * ds) * e, s0 + (so + i * ss) * e, elem_size);
    } else {
      std::memcpy(d0 + dof * e, s0 + so * e, run_bytes);
    }
    // odometer over the outer dims
    size_t d = outer;
    while (d > 0) {
      --d;
      if (++idx[d] < region.sizes[d]) break;
      idx[d] = 0;
      if (d == 0) return;
    }
    if (outer == 0) return;
  }
}

}  // namespace tessera
