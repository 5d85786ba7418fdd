// The distributed save's entry points: one rank's Save (dist/save_protocol.h),
// then rank 0 coordinates and the others participate.
#include "dist/save.h"

#include "dist/save_protocol.h"
#include "tessera/error.h"

namespace tessera {
namespace dist {
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

SaveResult run(Store& store, const std::string& checkpoint, const SaveOptions& options,
               const std::function<RankManifest(Store::Impl&, const SaveOptions&)>& write) {
  ControlPlane& plane = plane_of(checkpoint, options);
  Store::Impl& impl = StoreAccess::impl(store);
  Save s{plane,
         store,
         impl.path,
         checkpoint,
         options.timeout,
         impl.env,
         plane.rank(),
         plane.world_size(),
         "tessera/save/" + std::to_string(plane.next_save_id()) + "/" + checkpoint + "/",
         "save of checkpoint '" + checkpoint + "' failed: "};
  const WritePart write_part = [&](Store::Impl& st) { return write(st, options); };
  return s.rank == 0 ? coordinate(s, write_part, options) : participate(s, write_part);
}

}  // namespace

SaveResult save(const StateDict& state, Store& store, const std::string& checkpoint, const SaveOptions& options) {
  return run(store, checkpoint, options,
             [&](Store::Impl& st, const SaveOptions& opts) { return write_shards(state, st, opts); });
}

}  // namespace dist

void abstain(ErrorKind kind, const std::string& what, Store& store, const std::string& checkpoint,
             const SaveOptions& options) {
  const dist::Failure failure{kind, what};
  dist::run(store, checkpoint, options, [&](Store::Impl&, const SaveOptions&) -> RankManifest { failure.raise(); });
  throw Error("save of checkpoint '" + checkpoint + "': an abstaining rank's save did not fail");  // unreachable
}

}  // namespace tessera
