// Parts of the engine's messages, written one way everywhere.
#pragma once

#include <cstddef>
#include <limits>
#include <string>
#include <vector>

namespace tessera::engine {

// "checkpoint 'a', tensor 'w'": what an error about one tensor starts with.
inline std::string where(const std::string& checkpoint, const std::string& tensor) {
  return "checkpoint '" + checkpoint + "', tensor '" + tensor + "'";
}

// "'a', 'b', 'c'"; past the first `limit` names, the rest are counted:
// "'a', 'b', ... (7 in all)".
inline std::string quoted_list(const std::vector<std::string>& names,
                               size_t limit = std::numeric_limits<size_t>::max()) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < limit; ++i) s += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > limit) s += ", ... (" + std::to_string(names.size()) + " in all)";
  return s;
}

}  // namespace tessera::engine
