// Keys of module, optimizer and app state (tessera/module.h): how a prefix
// and a name join, and reading a value of one kind by key.
#pragma once

#include <string>
#include <variant>

#include "tessera/error.h"
#include "tessera/state_dict.h"

namespace tessera {

// "<prefix>.<name>", or `name` when `prefix` is empty.
inline std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

// The value `key` holds; throws NotFoundError when the state dict lacks it,
// InvalidArgument naming both kinds when it is of another kind.
template <class T>
const T& value_as(const StateDict& sd, const std::string& key) {
  const Value& v = sd.value(key);
  if (const T* x = std::get_if<T>(&v)) return *x;
  throw InvalidArgument("value '" + key + "': expected " + value_kind(Value{T{}}) + ", found " + value_kind(v));
}

}  // namespace tessera
