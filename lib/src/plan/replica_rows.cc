// The read-once row rule (tessera/replicas.h): public, so that the Python
// extension binds it; a pure decision, so it lives in plan/.
#include "tessera/replicas.h"

#include <algorithm>

namespace tessera {

std::vector<RowRange> split_rows(int64_t begin, int64_t end, int64_t parts, const Shape& row_starts) {
  if (end <= begin) return {};
  Shape cuts;
  for (int64_t r : row_starts)
    if (begin < r && r < end) cuts.push_back(r);
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  if (cuts.empty()) return {RowRange{begin, end}};
  Shape bounds{begin};
  for (int64_t i = 1; i < parts; ++i) {
    const int64_t ideal = begin + (end - begin) * i / parts;
    auto above = std::lower_bound(cuts.begin(), cuts.end(), ideal);  // the first edge >= ideal
    int64_t nearest;
    if (above == cuts.end())
      nearest = cuts.back();
    else if (above == cuts.begin())
      nearest = *above;
    else
      nearest = ideal - above[-1] <= *above - ideal ? above[-1] : *above;
    if (nearest > bounds.back()) bounds.push_back(nearest);
  }
  bounds.push_back(end);
  std::vector<RowRange> out;
  for (size_t i = 0; i + 1 < bounds.size(); ++i) out.push_back(RowRange{bounds[i], bounds[i + 1]});
  return out;
}

std::vector<std::vector<RowPart>> plan_replica_reads(const std::vector<ReplicaBox>& boxes, int64_t ranks) {
  // Stored bytes each rank reads so far: doubles, with the arithmetic below in
  // this order, so that plans equal bit for bit those of the Python rule this
  // replaced (_replicated.py's _split_rows and balancing in 0.5.0).
  std::vector<double> load(static_cast<size_t>(ranks), 0.0);
  std::vector<std::vector<RowPart>> plan;
  for (const ReplicaBox& box : boxes) {
    std::vector<RowRange> ranges =
        split_rows(box.begin, box.end, static_cast<int64_t>(box.readers.size()), box.row_starts);
    const double stored_fraction =
        box.logical_bytes ? static_cast<double>(box.stored_bytes) / static_cast<double>(box.logical_bytes) : 1.0;
    const uint64_t rows = static_cast<uint64_t>(std::max<int64_t>(box.end - box.begin, 1));
    const double row_bytes = static_cast<double>(box.bytes / rows) * stored_fraction;
    // Largest first (ties: the lower rows, as split_rows lists them), each to
    // the least-loaded reader.
    std::stable_sort(ranges.begin(), ranges.end(), [](const RowRange& a, const RowRange& b) {
      return a.end - a.begin > b.end - b.begin;
    });
    std::vector<RowPart> parts;
    for (const RowRange& r : ranges) {
      int64_t reader = box.readers.front();
      for (int64_t candidate : box.readers)
        if (load[candidate] < load[reader]) reader = candidate;
      load[reader] += static_cast<double>(r.end - r.begin) * row_bytes;
      parts.push_back(RowPart{r, reader});
    }
    std::sort(parts.begin(), parts.end(),
              [](const RowPart& a, const RowPart& b) { return a.rows.begin < b.rows.begin; });
    plan.push_back(std::move(parts));
  }
  return plan;
}

}  // namespace tessera
