// diff_checkpoints(): what changed between two checkpoints of a store.
// Content is judged by chunk ids, box by box, so an unchanged tensor costs
// no reads; --values reads only the chunks whose ids differ.
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "engine/chunk_reader.h"
#include "engine/load/load.h"
#include "engine/tools/float_values.h"
#include "engine/messages.h"
#include "engine/tools/pieces.h"
#include "engine/tools/diff.h"
#include "engine/value_size.h"
#include "pack/pack_cache.h"
#include "tessera/checkpoint.h"
#include "tessera/error.h"
#include "tessera/history.h"

namespace tessera::engine {
namespace {

// Max |b - a| and the squared norms behind relative L2, over element pairs.
class StatsAccumulator {
 public:
  StatsAccumulator(ElementReader read, size_t elem_size) : read_(read), elem_size_(elem_size) {}

  // `a` and `b` each hold `count` dense elements.
  void add(const std::byte* a, const std::byte* b, size_t count) {
    for (size_t i = 0; i < count; ++i) {
      const double x = read_(a, i);
      sum_a2_ += x * x;
      if (std::memcmp(a + i * elem_size_, b + i * elem_size_, elem_size_) == 0) continue;  // NaN == NaN here
      const double d = std::fabs(read_(b, i) - x);
      if (std::isnan(d)) {
        nan_ = true;
      } else {
        max_ = std::max(max_, d);
        sum_d2_ += d * d;
      }
    }
    elements_ += count;
  }

  ValueStats stats() const {
    ValueStats s;
    s.elements = elements_;
    if (nan_) {
      s.max_abs_diff = s.relative_l2 = std::numeric_limits<double>::quiet_NaN();
      return s;
    }
    s.max_abs_diff = max_;
    if (std::isnan(sum_a2_)) s.relative_l2 = std::numeric_limits<double>::quiet_NaN();  // a holds a NaN
    else if (sum_a2_ > 0) s.relative_l2 = std::sqrt(sum_d2_ / sum_a2_);
    else s.relative_l2 = sum_d2_ > 0 ? std::numeric_limits<double>::infinity() : 0.0;
    return s;
  }

 private:
  ElementReader read_;
  size_t elem_size_;
  double max_ = 0, sum_a2_ = 0, sum_d2_ = 0;
  uint64_t elements_ = 0;
  bool nan_ = false;
};

struct Side {
  std::string checkpoint;
  std::map<std::string, catalog::TensorRecord> tensors;
  std::map<std::string, Value> values;
};

Side read_side(Store::Impl& impl, const std::string& checkpoint) {
  std::lock_guard lock(impl.mu);
  const auto ckpt = require_checkpoint(impl, checkpoint);
  Side side{checkpoint, {}, {}};
  for (auto& t : impl.catalog.tensors(ckpt.id)) side.tensors.emplace(t.name, std::move(t));
  for (auto& v : impl.catalog.values(ckpt.id)) side.values.emplace(v.name, std::move(v.value));
  return side;
}

int64_t tensor_bytes(const catalog::TensorRecord& t) { return volume(t.shape) * t.elem_size; }

// Decoded, checked chunks for the statistics, one reader per pack.
class ChunkSource {
 public:
  explicit ChunkSource(Store::Impl& store) : store_(store), packs_(store.env, store.packs_dir()) {}

  std::vector<std::byte> raw(const pack::ChunkId& id, const std::string& context) {
    std::optional<catalog::ChunkLocation> loc;
    {
      std::lock_guard lock(store_.mu);
      loc = store_.catalog.locate(id);
    }
    if (!loc) throw CorruptionError(context + ": chunk " + id.hex() + " is not in the catalog");
    return read_raw_chunk(packs_, *loc, context);
  }

 private:
  Store::Impl& store_;
  pack::PackCache packs_;
};

class Differ {
 public:
  Differ(Store::Impl& store, const DiffOptions& options, const Side& a, const Side& b)
      : store_(store), options_(options), a_(a), b_(b), chunks_(store) {}

  // Nullopt when the tensors are equal.
  std::optional<EntryDiff> tensors(const catalog::TensorRecord& ta, const catalog::TensorRecord& tb) {
    if (ta.layout_id == tb.layout_id) return std::nullopt;  // one layout: same dtype, shape, boxes, chunks
    EntryDiff d = header(ta.name, "tensor", "tensor");
    d.dtype_a = ta.dtype;
    d.dtype_b = tb.dtype;
    d.shape_a = ta.shape;
    d.shape_b = tb.shape;
    d.chunks = static_cast<int64_t>(tb.pieces.size());
    d.logical_bytes = tensor_bytes(tb);
    if (ta.dtype != tb.dtype || ta.shape != tb.shape) {
      d.change = ta.dtype != tb.dtype ? "dtype" : "shape";
      d.changed_chunks = d.chunks;
      d.changed_bytes = d.logical_bytes;
      return d;
    }
    d.change = "content";
    const auto pa = in_canonical_order(ta.pieces), pb = in_canonical_order(tb.pieces);
    std::optional<StatsAccumulator> stats;
    if (ElementReader read = options_.values ? element_reader(tb.dtype) : nullptr)
      stats.emplace(read, static_cast<size_t>(tb.elem_size));
    if (same_boxes(pa, pb)) {
      for (size_t i = 0; i < pb.size(); ++i) {
        if (pa[i].chunk == pb[i].chunk) continue;
        count_changed(d, pb[i].box, tb.elem_size);
        if (!stats) continue;
        const auto ra = chunks_.raw(pa[i].chunk, where(a_.checkpoint, ta.name));
        const auto rb = chunks_.raw(pb[i].chunk, where(b_.checkpoint, tb.name));
        stats->add(ra.data(), rb.data(), static_cast<size_t>(pb[i].box.volume()));
      }
    } else {
      // Different grids or shards: chunk ids cannot be paired, so compare
      // the bytes of whole tensors, piece by piece of B.
      auto whole_a = load_whole(a_.checkpoint, ta), whole_b = load_whole(b_.checkpoint, tb);
      const Box whole = Box::whole(tb.shape);
      const size_t elem = static_cast<size_t>(tb.elem_size);
      for (const auto& p : pb) {
        std::vector<std::byte> xa(static_cast<size_t>(p.box.volume()) * elem), xb(xa.size());
        copy_region(p.box, StridedView::dense(whole, whole_a.data()), StridedView::dense(p.box, xa.data()), elem);
        copy_region(p.box, StridedView::dense(whole, whole_b.data()), StridedView::dense(p.box, xb.data()), elem);
        if (xa == xb) continue;
        count_changed(d, p.box, tb.elem_size);
        if (stats) stats->add(xa.data(), xb.data(), static_cast<size_t>(p.box.volume()));
      }
    }
    if (d.changed_chunks == 0) return std::nullopt;
    if (stats) {
      d.has_stats = true;
      d.stats = stats->stats();
    }
    return d;
  }

  static EntryDiff header(const std::string& name, const std::string& kind_a, const std::string& kind_b) {
    EntryDiff d;
    d.name = name;
    d.kind_a = kind_a;
    d.kind_b = kind_b;
    return d;
  }

 private:
  static void count_changed(EntryDiff& d, const Box& box, int64_t elem_size) {
    ++d.changed_chunks;
    d.changed_bytes += box.volume() * elem_size;
  }

  std::vector<std::byte> load_whole(const std::string& checkpoint, const catalog::TensorRecord& t) {
    std::vector<std::byte> buf(static_cast<size_t>(tensor_bytes(t)));
    StateDict sd;
    sd.add_tensor(t.name, TensorView::contiguous(t.dtype, static_cast<size_t>(t.elem_size), buf.data(), t.shape));
    LoadOptions lo;
    lo.threads = options_.threads;
    load(sd, store_, checkpoint, lo);
    return buf;
  }

  Store::Impl& store_;
  const DiffOptions& options_;
  const Side& a_;
  const Side& b_;
  ChunkSource chunks_;
};

}  // namespace

DiffReport diff_checkpoints(Store::Impl& store, const std::string& a, const std::string& b, const DiffOptions& options) {
  const Side sa = read_side(store, a), sb = read_side(store, b);
  DiffReport report;
  report.a = a;
  report.b = b;
  std::set<std::string> names;
  for (const Side* s : {&sa, &sb}) {
    for (const auto& [n, _] : s->tensors) names.insert(n);
    for (const auto& [n, _] : s->values) names.insert(n);
  }
  Differ differ(store, options, sa, sb);
  for (const std::string& n : names) {
    const auto ta = sa.tensors.find(n), tb = sb.tensors.find(n);
    const auto va = sa.values.find(n), vb = sb.values.find(n);
    const bool in_a = ta != sa.tensors.end() || va != sa.values.end();
    const bool in_b = tb != sb.tensors.end() || vb != sb.values.end();
    if (!in_a) {
      report.added.push_back(n);
      continue;
    }
    if (!in_b) {
      report.removed.push_back(n);
      continue;
    }
    if (ta != sa.tensors.end() && tb != sb.tensors.end()) {
      if (auto d = differ.tensors(ta->second, tb->second)) report.changed.push_back(std::move(*d));
      else {
        ++report.unchanged;
        report.unchanged_bytes += tensor_bytes(tb->second);
      }
      continue;
    }
    const std::string kind_a = ta != sa.tensors.end() ? "tensor" : value_kind(va->second);
    const std::string kind_b = tb != sb.tensors.end() ? "tensor" : value_kind(vb->second);
    if (kind_a == kind_b && va->second == vb->second) {  // equal values
      ++report.unchanged;
      report.unchanged_bytes += value_size(vb->second);
      continue;
    }
    EntryDiff d = Differ::header(n, kind_a, kind_b);
    d.change = kind_a == kind_b ? "value" : "kind";
    if (tb != sb.tensors.end()) {
      d.dtype_b = tb->second.dtype;
      d.shape_b = tb->second.shape;
      d.chunks = d.changed_chunks = static_cast<int64_t>(tb->second.pieces.size());
      d.logical_bytes = d.changed_bytes = tensor_bytes(tb->second);
    } else {
      d.logical_bytes = d.changed_bytes = value_size(vb->second);
    }
    if (ta != sa.tensors.end()) {
      d.dtype_a = ta->second.dtype;
      d.shape_a = ta->second.shape;
    }
    report.changed.push_back(std::move(d));
  }
  return report;
}

}  // namespace tessera::engine
