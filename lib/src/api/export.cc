// The public export (tessera/export.h); engine/tools/export_safetensors
// checks the options and carries it out.
#include "tessera/export.h"

#include "api/store_access.h"
#include "engine/tools/export_safetensors.h"

namespace tessera {

ExportResult export_safetensors(const Store& store, const std::string& checkpoint, const std::string& out_dir,
                                const ExportOptions& options) {
  return engine::export_safetensors(StoreAccess::impl(store), checkpoint, out_dir, options);
}

std::optional<std::string> safetensors_dtype(const std::string& dtype) { return engine::safetensors_dtype(dtype); }

}  // namespace tessera
