#include "tessera/value.h"

namespace tessera {

const char* value_kind(const Value& v) {
  switch (v.index()) {
    case 0: return "bytes";
    case 1: return "int";
    case 2: return "float";
    default: return "string";
  }
}

}  // namespace tessera
