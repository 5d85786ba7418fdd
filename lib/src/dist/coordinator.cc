// Rank 0's side of the save protocol (dist/save_protocol.h): open the store
// and announce the save, write its own part, gather the others' reports in
// one wait, decide inside the catalog transaction, and report the outcome.
#include <optional>
#include <vector>

#include "catalog/catalog.h"
#include "dist/save_protocol.h"
#include "engine/save/commit.h"
#include "engine/save/manifest_codec.h"
#include "engine/save/retention.h"

namespace tessera::dist {
namespace {

using std::chrono::milliseconds;

std::string did_not_report(const Save& s, const std::vector<int64_t>& missing) {
  std::string who = missing.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < missing.size() && i < 8; ++i) who += (i ? ", " : "") + std::to_string(missing[i]);
  if (missing.size() > 8) who += " and " + std::to_string(missing.size() - 8) + " more";
  return s.failed + who + " did not report within " + s.seconds(s.timeout) + " s (did " +
         (missing.size() == 1 ? "it" : "they") + " die?)";
}

// Rank 0: waits (once) until every rank has arrived or the timeout passes,
// then collects the reports. Throws the lowest rank's failure (its class),
// else names the ranks that did not report.
//
// A rank sets its error key before it arrives, so once all have arrived a
// rank without a report file has an error key: it is read with the whole
// timeout, never a short one (a Store's round trip on a loaded host can
// outlast a millisecond, and the failure would be misreported as a rank that
// did not report). Only when some rank is missing is each key only peeked at
// (1 ms), so that the cost does not grow with the world size.
std::vector<engine::RankManifest> gather(Save& s, const std::string& token, const engine::RankManifest& mine,
                                 const std::optional<Failure>& own_failure) {
  const bool all_in = s.world == 1 || s.wait_get("all_in", s.timeout).has_value();
  const milliseconds error_wait = all_in ? s.timeout : milliseconds(1);
  std::vector<engine::RankManifest> all{mine};
  std::vector<int64_t> missing;
  std::optional<Failure> failure = own_failure;
  for (int64_t r = 1; r < s.world; ++r) {
    const std::string path = s.report_path(token, r);
    if (s.store->env.exists(path)) {
      if (!failure) all.push_back(engine::decode_manifest(read_report(s.store->env, path)));
      s.store->env.remove_file(path);
    } else if (auto why = s.wait_get("error/" + std::to_string(r), error_wait)) {
      if (!failure) failure = Failure::decode(*why);
    } else {
      missing.push_back(r);
    }
  }
  for (const char* k : {"ready", "arrived", "all_in"}) s.plane.delete_key(s.key(k));
  if (failure) failure->raise();
  if (!missing.empty()) throw Error(did_not_report(s, missing));
  return all;
}

// Rank 0 checks that it can save into its store and announces the save;
// throws (after telling the others) if it cannot, the class the others throw.
void announce(Save& s, const std::string& token, const SaveOptions& opts) {
  try {
    engine::check_can_save(*s.store, s.checkpoint, opts.overwrite);
  } catch (const std::exception& e) {
    announce_failure(s, Failure::of(e));
  }
  s.plane.set(s.key("ready"), std::string("ok:") + token);
}

}  // namespace

void announce_failure(Save& s, const Failure& failure) {
  s.plane.set(s.key("ready"), error_value(failure));
  s.leave(false);
  failure.raise();
}

SaveResult coordinate(Save& s, const WritePart& write_part, const SaveOptions& opts) {
  const std::string token = new_token();
  announce(s, token, opts);
  Store::Impl& store = *s.store;
  engine::RankManifest mine;
  std::optional<Failure> own_failure;
  try {
    mine = write_part();
    mine.rank = 0;
  } catch (const std::exception& e) {
    own_failure = s.rank_failure(error_kind(e), e.what());
  }
  std::optional<Failure> failure;
  try {
    std::vector<engine::RankManifest> all = gather(s, token, mine, own_failure);
    // The decision, taken inside the transaction: a rank that stopped
    // waiting may have aborted the save first.
    auto decide = [&] {
      const std::string d = s.plane.compare_set(s.key("decision"), "", kCommit);
      if (d != kCommit) throw Error(s.aborted(d));
    };
    engine::commit_checkpoint(store, s.checkpoint, std::move(all), s.world, opts, token, decide);
    engine::apply_retention_after_commit(store, opts.keep_last, s.checkpoint, mine.stats);
  } catch (const std::exception& e) {
    const std::string what = e.what();
    failure = Failure{error_kind(e), what.rfind(s.failed, 0) == 0 ? what : s.failed + what};
  }
  s.plane.set(s.key("outcome"), failure ? error_value(*failure) : kOk);
  s.leave(!failure);
  if (failure) {
    engine::discard_packs(store, mine.packs);
    failure->raise();
  }
  return mine.stats;
}

}  // namespace tessera::dist
