// The distributed save's entry points: one rank's Save (dist/save_protocol.h),
// then rank 0 coordinates and the others participate.
#include "dist/save.h"

#include "dist/save_protocol.h"
#include "tessera/error.h"

namespace tessera::dist {
namespace {

// The plane of a distributed save, checked before it is used.
ControlPlane& plane_of(const std::string& checkpoint, const SaveOptions& options) {
  if (!options.plane) throw InvalidArgument("save of checkpoint '" + checkpoint + "': no control plane (options.plane)");
  ControlPlane& plane = *options.plane;
  const int64_t rank = plane.rank(), world = plane.world_size();
  if (world < 1 || rank < 0 || rank >= world)
    throw InvalidArgument("save of checkpoint '" + checkpoint + "': the control plane's rank " + std::to_string(rank) +
                          " is outside its world size " + std::to_string(world));
  return plane;
}

Save save_of(Store::Impl* store, const std::string& checkpoint, const SaveOptions& options) {
  ControlPlane& plane = plane_of(checkpoint, options);
  return Save{plane,
              store,
              checkpoint,
              options.timeout,
              plane.rank(),
              plane.world_size(),
              "tessera/save/" + std::to_string(plane.next_save_id()) + "/" + checkpoint + "/",
              "save of checkpoint '" + checkpoint + "' failed: "};
}

}  // namespace

SaveResult save(const StateDict& state, Store::Impl& store, const std::string& checkpoint, const SaveOptions& options) {
  Save s = save_of(&store, checkpoint, options);
  const WritePart write_part = [&] { return engine::write_shards(state, store, options); };
  return s.rank == 0 ? coordinate(s, write_part, options) : participate(s, write_part);
}

void abstain(ErrorKind kind, const std::string& what, const std::string& checkpoint, const SaveOptions& options) {
  Save s = save_of(nullptr, checkpoint, options);
  if (s.rank == 0) announce_failure(s, s.rank_failure(kind, what));
  participate(s, [&]() -> engine::RankManifest { Failure{kind, what}.raise(); });
  throw Error(s.failed + "an abstaining rank's part did not fail");  // unreachable: participate throws
}

}  // namespace tessera::dist
