// The side of ranks r >= 1 in the save protocol (dist/save_protocol.h): wait
// for rank 0's ready, write their part and report it as a file, arrive, and
// wait for the outcome, the same on every rank (the no-split-outcome rule).
#include <optional>

#include "catalog/catalog.h"
#include "dist/save_protocol.h"
#include "engine/save/manifest_codec.h"

namespace tessera::dist {
namespace {

using std::chrono::milliseconds;

// Whether the catalog holds `checkpoint` as committed by the save `token`.
// Rank 0 decided inside its catalog transaction; the write lock is free only
// once that transaction has committed, rolled back, or died (SQLite rolls
// back a dead writer's hot journal), so what is read under it is final.
bool committed_in_catalog(const Save& s, const std::string& token) {
  if (!s.store) throw Error("this rank abstained without a store");
  Store::Impl& impl = *s.store;
  if (impl.read_only) throw StoreError("store '" + impl.path + "' is open read-only");
  std::lock_guard lock(impl.mu);
  auto tx = impl.catalog.transaction(catalog::Transaction::Kind::kWrite);
  auto c = impl.catalog.find_checkpoint(s.checkpoint);
  return c && c->save_token == token;
}

// Rank r >= 1: the outcome of the save, "ok" or "error:<failure>", the same
// on every rank even when rank 0 is slower than the timeout (see
// save_protocol.h, "No split outcome").
std::string await_outcome(Save& s, const std::string& token) {
  if (auto v = s.wait_get("outcome", 2 * s.timeout)) return *v;
  const std::string d = s.plane.compare_set(s.key("decision"), "", kAbortPrefix + std::to_string(s.rank));
  if (d != kCommit) return error_value({ErrorKind::kError, s.aborted(d)});
  if (auto v = s.wait_get("outcome", s.timeout)) return *v;  // rank 0 is committing
  try {
    if (committed_in_catalog(s, token)) return kOk;
  } catch (const std::exception& e) {
    return error_value({ErrorKind::kError, s.failed + "the coordinator (rank 0) decided to commit but did not " +
                                               "report, and the catalog could not tell whether it did: " + e.what()});
  }
  return error_value({ErrorKind::kError, s.failed + "the coordinator (rank 0) decided to commit but did not " +
                                             "report within " + s.seconds(3 * s.timeout) +
                                             " s, and the checkpoint is not in the catalog (did rank 0 die?)"});
}

}  // namespace

SaveResult participate(Save& s, const WritePart& write_part) {
  const milliseconds ready_wait = 2 * s.timeout;
  auto ready = s.wait_get("ready", ready_wait);
  if (!ready || is_error(*ready)) {
    s.leave(false);
    if (!ready) throw Error(s.coordinator_silent(ready_wait));
    failure_of(*ready).raise();
  }
  const std::string token = ready->substr(3);
  const std::string error_key = "error/" + std::to_string(s.rank);
  engine::RankManifest mine;
  bool failed_here = false;
  try {
    mine = write_part();
    mine.rank = s.rank;
    write_report(s.store->env, s.report_path(token, s.rank), engine::encode_manifest(mine));
  } catch (const std::exception& e) {
    s.plane.set(s.key(error_key), s.rank_failure(error_kind(e), e.what()).encode());
    failed_here = true;
  }
  if (s.plane.add(s.key("arrived"), 1) == s.world - 1) s.plane.set(s.key("all_in"), kOk);
  const std::string outcome = await_outcome(s, token);
  if (failed_here) s.plane.delete_key(s.key(error_key));
  s.leave(outcome == kOk);
  if (is_error(outcome)) {
    if (s.store) {
      engine::discard_packs(*s.store, mine.packs);                // each rank removes its own packs
      s.store->env.remove_file(s.report_path(token, s.rank));  // if rank 0 gave up before reading it
    }
    failure_of(outcome).raise();
  }
  return mine.stats;
}

}  // namespace tessera::dist
