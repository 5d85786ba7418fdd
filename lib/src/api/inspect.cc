// The public inspection functions (tessera/inspect.h): describe
// (engine/tools/describe) and verify (engine/maintenance/verify).
#include "tessera/inspect.h"

#include "api/store_access.h"
#include "engine/maintenance/verify.h"
#include "engine/tools/describe.h"

namespace tessera {

std::vector<EntryInfo> describe(const Store& store, const std::string& checkpoint) {
  return engine::describe(StoreAccess::impl(store), checkpoint);
}

VerifyReport verify(const Store& store, const std::vector<std::string>& checkpoints, const VerifyOptions& options) {
  return engine::verify(StoreAccess::impl(store), checkpoints, options);
}

}  // namespace tessera
