// RankManifest <-> bytes, for handing a rank's chunk records to the
// coordinator through the control plane. Little-endian, length-prefixed;
// the format is private to one job (both ends run the same build), so it
// carries a version only to catch mismatched builds.
#pragma once

#include <string>

#include "engine/save/shard_writer.h"

namespace tessera::engine {

std::string encode_manifest(const RankManifest& m);
// Throws std::runtime_error on malformed input.
RankManifest decode_manifest(const std::string& bytes);

}  // namespace tessera::engine
