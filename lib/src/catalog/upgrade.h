// Conversions the migration ladder runs in code, between SQL files (see
// Catalog::migrate and CATALOG.md, "Migrations").
#pragma once

#include "catalog/sqlite.h"

namespace tessera::catalog {

// The schema version whose SQL (0003_layouts.sql) is followed by
// convert_to_layouts().
constexpr int kLayoutsVersion = 3;

// Fills layouts, tensor_versions and the checkpoints' tensor
// lists and totals from schema 1's tensors and tensor_chunks rows (which
// 0004_drop_pieces.sql then drops). Runs inside the ladder's transaction.
void convert_to_layouts(Db& db);

// The schema version whose SQL (0006_row_sums.sql) is followed by add_row_sums().
constexpr int kRowSumsVersion = 6;

// Computes row_sum of every checkpoints, tensors and entries row (CATALOG.md,
// "Row checksums"). Runs inside the ladder's transaction.
void add_row_sums(Db& db);

}  // namespace tessera::catalog
