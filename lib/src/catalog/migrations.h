#pragma once

#include <vector>

namespace tessera::catalog {

// One schema migration: applying `sql` to a catalog at version `version - 1`
// brings it to `version`. Generated from schema/NNNN_name.sql.
struct Migration {
  int version;
  const char* name;
  const char* sql;
};

const std::vector<Migration>& migrations();

}  // namespace tessera::catalog
