// The distributed save's entry points: one rank's Save (dist/save_protocol.h),
// then rank 0 coordinates and the others participate.
#include "dist/save.h"

#include "dist/save_protocol.h"
#include "tessera/error.h"

namespace tessera {
namespace dist {
namespace {

SaveResult run(const std::string& store_path, const std::string& checkpoint, ControlPlane& plane,
               const SaveOptions& options, const DistributedOptions& dist,
               const std::function<RankManifest(Store::Impl&, const SaveOptions&)>& write) {
  Save s{plane,
         store_path,
         checkpoint,
         dist.timeout,
         dist.env ? dist.env : posix_env(),
         plane.rank(),
         plane.world_size(),
         "tessera/save/" + std::to_string(plane.next_save_id()) + "/" + checkpoint + "/",
         "save of checkpoint '" + checkpoint + "' failed: "};
  const WritePart write_part = [&](Store::Impl& store) { return write(store, options); };
  return s.rank == 0 ? coordinate(s, write_part, options) : participate(s, write_part);
}

}  // namespace

void abstain(const Failure& failure, const std::string& store_path, const std::string& checkpoint,
             ControlPlane& plane, const SaveOptions& options, const DistributedOptions& dist) {
  run(store_path, checkpoint, plane, options, dist,
      [&](Store::Impl&, const SaveOptions&) -> RankManifest { failure.raise(); });
  throw Error("save of checkpoint '" + checkpoint + "': an abstaining rank's save did not fail");  // unreachable
}

}  // namespace dist

SaveResult save(const StateDict& state, const std::string& store_path, const std::string& checkpoint,
                ControlPlane& plane, const SaveOptions& options, const DistributedOptions& dist) {
  return tessera::dist::run(store_path, checkpoint, plane, options, dist,
                              [&](Store::Impl& store, const SaveOptions& opts) { return write_shards(state, store, opts); });
}

}  // namespace tessera
