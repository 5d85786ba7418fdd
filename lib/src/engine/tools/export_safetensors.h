// The engine's export: a checkpoint's tensors as safetensors files
// (export_safetensors.cc).
#pragma once

#include <optional>
#include <string>

#include "engine/store_impl.h"
#include "tessera/export.h"

namespace tessera::engine {

// What tessera::export_safetensors does (see tessera/export.h), options
// checks included, on the store's insides.
ExportResult export_safetensors(Store::Impl& store, const std::string& checkpoint, const std::string& out_dir,
                                const ExportOptions& options);

// What tessera::safetensors_dtype does (see tessera/export.h).
std::optional<std::string> safetensors_dtype(const std::string& dtype);

}  // namespace tessera::engine
