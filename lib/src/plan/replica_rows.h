// Which rows of a replicated box each of the ranks that need it reads from
// storage, when the box is read once and the rows travel to the others (the
// C++ replicated load, dist/replicated_load.cc; Python's read-once plan,
// tessera/_replicated.py through tessera._core.plan_replica_reads). Pure:
// rows, chunk edges and byte counts in, row ranges and readers out.
//
// The rule: a box's dimension-0 rows are cut only at chunk edges (the saved
// tensor's row starts), so that no chunk is read by two ranks; the largest
// ranges go first, each to the rank that has read the fewest stored bytes so
// far (over every box of the plan), ties to the lowest rank.
#pragma once

#include <cstdint>
#include <vector>

#include "geometry/box.h"

namespace tessera::plan {

struct RowRange {
  int64_t begin = 0;  // inclusive, a global dimension-0 row
  int64_t end = 0;    // exclusive
  bool operator==(const RowRange&) const = default;
};

// [begin, end) cut into at most `parts` ranges of about equal size, cutting
// only at `row_starts` that lie strictly inside it: cut i (of parts - 1) is
// the edge nearest to begin + (end - begin) * i / parts (ties to the lower
// edge), dropped when it does not advance. One range when no edge lies
// inside; none when the range is empty. `row_starts` may be in any order and
// hold edges outside the range.
std::vector<RowRange> split_rows(int64_t begin, int64_t end, int64_t parts, const Shape& row_starts);

// One box that several ranks need, as the plan sees it.
struct ReplicaBox {
  // Global dimension-0 rows of the box; [0, 1) for a 0-D tensor.
  int64_t begin = 0;
  int64_t end = 0;
  std::vector<int64_t> readers;  // the ranks that need the box: ascending, distinct, non-empty
  Shape row_starts;              // the saved tensor's chunk edges (EntryInfo::row_starts)
  uint64_t bytes = 0;            // raw bytes of the box: volume × element size
  // Of the saved tensor (EntryInfo): readers are balanced by the stored
  // (compressed) bytes they fetch, bytes × stored / logical (× 1 when
  // logical_bytes is 0).
  int64_t stored_bytes = 0;
  int64_t logical_bytes = 0;
};

struct RowPart {
  RowRange rows;
  int64_t reader = 0;  // the rank that reads `rows` from storage
  bool operator==(const RowPart&) const = default;
};

// For each box, in order: split_rows(begin, end, readers.size(), row_starts)
// with a reader for each range, ascending by rows. Boxes are assigned in the
// order given (the load of each rank carries over from box to box), so every
// rank that passes the same boxes gets the same plan.
// REQUIRES: every reader in [0, ranks).
std::vector<std::vector<RowPart>> plan_replica_reads(const std::vector<ReplicaBox>& boxes, int64_t ranks);

}  // namespace tessera::plan
