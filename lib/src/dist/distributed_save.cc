// The save protocol over a ControlPlane (tessera/distributed.h). Keys live
// under P = "tessera/save/<n>/<checkpoint>/", n counting the saves made
// through this control plane (every rank makes the same saves in the same
// order, as with collectives):
//
//   ready      rank 0: "ok:<token>" once the store is open and the name free,
//              or "error:<failure>". The token (16 random hex digits) names
//              this save; the catalog records it with the checkpoint.
//   arrived    counter: each rank r >= 1 adds 1 once it has reported.
//   all_in     set by the rank whose add brought `arrived` to world - 1.
//   error/<r>  rank r >= 1: "<failure>", why its part failed (the message
//              reads "save of ... failed: rank r: ...").
//   decision   set once, by compare_set from empty: "commit" by rank 0 inside
//              its catalog transaction just before COMMIT, or "abort:<r>" by
//              a rank r whose wait for the outcome timed out. First one wins.
//   outcome    rank 0: "ok" after the commit, or "error:<failure>".
//   left       counter: every rank, rank 0 included, adds 1 as it leaves.
//
// A <failure> is "<kind>:<message>": kind the error's class as its ErrorKind
// number in decimal (tessera/error.h: 4 is InvalidArgument, 0 the base
// Error), then the message. Every rank throws that class with that message,
// so the same bad shard is an InvalidArgument on every rank, not only on the
// rank that saw it. A kind this version does not know is thrown as Error.
//
// A rank's report (its manifest: chunk records, packs) is a file,
// <store>/tmp/save-<token>.rank-<r>, written under a temporary name and
// renamed, so it is there whole or not at all. Manifests reach hundreds of
// MiB at a million chunk references: the job's TCPStore never holds them.
//
// Normal case, in ControlPlane operations (over c10d, each is one Store
// call, and wait_get two: wait, then get):
//   rank r >= 1: wait_get(ready), add(arrived), wait_get(outcome), add(left):
//                4, two of which wait. The last to arrive also sets all_in.
//   rank 0:      set(ready), wait_get(all_in), delete_key x 3 (ready, arrived,
//                all_in), compare_set(decision), set(outcome), add(left): 8.
//   The last rank to leave also deletes outcome, decision and left (3).
// Rank 0 gathers in one wait whatever the world size; no count grows with it.
// 4 is the floor for rank r with c10d's operations and no key left behind:
// besides the two reads (ready, outcome) and one arrival signal, a key that
// all ranks read (outcome) can be deleted only once each has said it read it
// (add(left)) — c10d's wait sees keys appear, never disappear. A per-rank
// report key would cost its owner one more (a delete: c10d has no multi-key
// delete, and rank 0 deleting them would grow with the world size), which is
// why reports are files and arrival is a counter, as in torch elastic's
// store barrier.
//
// Who deletes what, and when:
//   - rank 0 deletes ready, arrived and all_in once it has gathered (every
//     rank had read ready before arriving), and each report file once read;
//   - rank r deletes its error/<r> after it has read the outcome (rank 0 has
//     read it by then);
//   - the rank whose add(left) reaches world deletes outcome, decision and
//     left — and, when the save failed, ready, arrived and all_in too, which
//     rank 0 may not have deleted (deleting a missing key is harmless);
//   - a rank whose save failed removes its own packs and report file.
// A rank that dies mid-save never leaves: its save's few small keys stay (no
// rank can tell it from a slow one).
//
// No split outcome. A rank whose wait for the outcome times out does not
// guess: it writes decision = "abort:<r>" unless rank 0 already wrote
// "commit". If it wins, rank 0's transaction sees "abort" just before COMMIT
// and rolls back, and every rank fails with the same message. If rank 0 had
// decided to commit, the rank waits `timeout` more for the outcome; if it
// still does not come (rank 0 died after deciding), the rank takes the
// catalog's write lock — it gets it only once rank 0's transaction has
// committed, rolled back, or died (SQLite then rolls back the hot journal) —
// and reports what the catalog holds: checkpoint `name` with this save's
// token means committed. (Taking that lock needs write access to the
// catalog. If rank 0 is alive but holds its transaction past SQLite's busy
// timeout, the rank fails saying it could not tell — the one case where it
// does not know the answer, and says so.)
//
// Timeouts: rank 0 gives the others one `timeout` from the moment it is done
// with its own part; the others give rank 0 twice that for ready and for the
// outcome (it may wait a full timeout for a rank before it can answer).
#include <charconv>
#include <cstdio>
#include <optional>
#include <random>

#include "catalog/catalog.h"
#include "engine/commit.h"
#include "engine/manifest_codec.h"
#include "engine/retention.h"
#include "engine/shard_writer.h"
#include "io/env.h"
#include "tessera/distributed.h"
#include "tessera/error.h"

namespace tessera {
namespace {

using std::chrono::milliseconds;

constexpr const char* kOk = "ok";
constexpr const char* kErrorPrefix = "error:";
constexpr const char* kCommit = "commit";
constexpr const char* kAbortPrefix = "abort:";

// A failure as the protocol carries it (see the top): its class and message.
struct Failure {
  ErrorKind kind = ErrorKind::kError;
  std::string what;

  std::string encode() const { return std::to_string(static_cast<int>(kind)) + ":" + what; }
  static Failure decode(const std::string& s) {
    const size_t colon = s.find(':');
    int kind = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + std::min(colon, s.size()), kind);
    if (colon == std::string::npos || colon == 0 || ec != std::errc() || end != s.data() + colon)
      return Failure{ErrorKind::kError, s};  // not ours: pass the text on
    return Failure{static_cast<ErrorKind>(kind), s.substr(colon + 1)};
  }
  [[noreturn]] void raise() const { throw_error(kind, what); }
};

bool is_error(const std::string& s) { return s.rfind(kErrorPrefix, 0) == 0; }
std::string error_value(const Failure& f) { return kErrorPrefix + f.encode(); }
// REQUIRES: is_error(s).
Failure failure_of(const std::string& s) { return Failure::decode(s.substr(std::string(kErrorPrefix).size())); }

std::string new_token() {
  std::random_device rd;
  const uint64_t x = (uint64_t{rd()} << 32) ^ rd();
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(x));
  return buf;
}

// One rank's view of one save.
struct Save {
  ControlPlane& plane;
  const std::string& store_path;
  const std::string& checkpoint;
  milliseconds timeout;
  std::shared_ptr<Env> env;  // never null
  int64_t rank, world;
  std::string prefix;  // P
  std::string failed;  // "save of checkpoint '<name>' failed: "

  std::string key(const std::string& k) const { return prefix + k; }
  std::optional<std::string> wait_get(const std::string& k, milliseconds limit) {
    return plane.wait_get(key(k), std::max(limit, milliseconds(1)));  // 0 means "forever" in c10d
  }
  // "20.0": `limit` in seconds, as messages state it.
  static std::string seconds(milliseconds limit) {
    char s[32];
    std::snprintf(s, sizeof s, "%.1f", static_cast<double>(limit.count()) / 1000.0);
    return s;
  }
  std::string report_path(const std::string& token, int64_t r) const {
    return store_path + "/tmp/save-" + token + ".rank-" + std::to_string(r);
  }
  // Rank r >= 1 waited `waited` (twice the timeout) for rank 0's "ready".
  std::string coordinator_silent(milliseconds waited) const {
    return failed + "the coordinator (rank 0) did not report within " + seconds(waited) + " s (did it die?)";
  }
  // The failure every rank reports once decision = `abort` ("abort:<r>").
  std::string aborted(const std::string& abort) const {
    return failed + "rank " + abort.substr(std::string(kAbortPrefix).size()) +
           " gave up waiting for the coordinator (rank 0) and aborted the save after " + seconds(2 * timeout) +
           " s (twice the timeout)";
  }

  // Every rank calls this once as it leaves; the last one deletes the keys
  // that are still there.
  void leave(bool succeeded) {
    if (plane.add(key("left"), 1) < world) return;
    for (const char* k : {"outcome", "decision", "left"}) plane.delete_key(key(k));
    if (!succeeded)
      for (const char* k : {"ready", "arrived", "all_in"}) plane.delete_key(key(k));
  }
};

void write_report(Env& env, const std::string& path, const std::string& bytes) {
  const std::string part = path + ".part";
  try {
    auto f = env.create_file(part);
    f->append(bytes.data(), bytes.size());
    f->close();
    env.rename(part, path);
  } catch (...) {
    env.remove_file(part);
    throw;
  }
}

std::string read_report(Env& env, const std::string& path) {
  auto f = env.open_file(path);
  std::string bytes(f->size(), '\0');
  f->read_at(0, bytes.size(), bytes.data());
  return bytes;
}

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
std::vector<RankManifest> gather(Save& s, const std::string& token, const RankManifest& mine,
                                 const std::optional<Failure>& own_failure) {
  if (s.world > 1) (void)s.wait_get("all_in", s.timeout);
  std::vector<RankManifest> all{mine};
  std::vector<int64_t> missing;
  std::optional<Failure> failure = own_failure;
  for (int64_t r = 1; r < s.world; ++r) {
    const std::string path = s.report_path(token, r);
    if (s.env->exists(path)) {
      if (!failure) all.push_back(decode_manifest(read_report(*s.env, path)));
      s.env->remove_file(path);
    } else if (auto why = s.wait_get("error/" + std::to_string(r), milliseconds(1))) {
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

// Rank 0 opens the store for writing and announces the save; throws (after
// telling the others) if it cannot, the class the others throw.
Store open_for_save(Save& s, const std::string& token, const SaveOptions& opts) {
  std::optional<Failure> failure;
  try {
    StoreOptions o;
    o.env = s.env;
    Store store = Store::open(s.store_path, o);
    std::lock_guard lock(store.impl().mu);
    if (!opts.overwrite && store.impl().catalog.find_checkpoint(s.checkpoint))
      throw AlreadyExistsError("checkpoint '" + s.checkpoint + "' already exists in store '" + s.store_path + "'");
    s.plane.set(s.key("ready"), std::string("ok:") + token);
    return store;
  } catch (const std::exception& e) {
    failure = Failure{error_kind(e), e.what()};
  }
  s.plane.set(s.key("ready"), error_value(*failure));
  s.leave(false);
  failure->raise();
}

SaveResult coordinate(Save& s, const StateDict& state, SaveOptions opts) {
  const std::string token = new_token();
  Store store = open_for_save(s, token, opts);
  RankManifest mine;
  std::optional<Failure> own_failure;
  try {
    mine = write_shards(state, store.impl(), opts);
    mine.rank = 0;
  } catch (const std::exception& e) {
    own_failure = Failure{error_kind(e), s.failed + "rank 0: " + e.what()};
  }
  std::optional<Failure> failure;
  try {
    std::vector<RankManifest> all = gather(s, token, mine, own_failure);
    // The decision, taken inside the transaction: a rank that stopped
    // waiting may have aborted the save first.
    auto decide = [&] {
      const std::string d = s.plane.compare_set(s.key("decision"), "", kCommit);
      if (d != kCommit) throw Error(s.aborted(d));
    };
    commit_checkpoint(store.impl(), s.checkpoint, std::move(all), opts, token, decide);
    apply_retention_after_commit(store, opts.keep_last, s.checkpoint, mine.stats);
  } catch (const std::exception& e) {
    const std::string what = e.what();
    failure = Failure{error_kind(e), what.rfind(s.failed, 0) == 0 ? what : s.failed + what};
  }
  s.plane.set(s.key("outcome"), failure ? error_value(*failure) : kOk);
  s.leave(!failure);
  if (failure) {
    discard_packs(store.impl(), mine.packs);
    failure->raise();
  }
  return mine.stats;
}

// Whether the catalog holds `checkpoint` as committed by the save `token`.
// Rank 0 decided inside its catalog transaction; the write lock is free only
// once that transaction has committed, rolled back, or died (SQLite rolls
// back a dead writer's hot journal), so what is read under it is final.
bool committed_in_catalog(const Save& s, const std::string& token) {
  StoreOptions o;
  o.create_if_missing = false;
  o.env = s.env;
  Store store = Store::open(s.store_path, o);
  std::lock_guard lock(store.impl().mu);
  auto tx = store.impl().catalog.transaction(catalog::Transaction::Kind::kWrite);
  auto c = store.impl().catalog.find_checkpoint(s.checkpoint);
  return c && c->save_token == token;
}

// Rank r >= 1: the outcome of the save, "ok" or "error:<failure>", the same
// on every rank even when rank 0 is slower than the timeout (see the top).
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

SaveResult participate(Save& s, const StateDict& state, const SaveOptions& opts) {
  const milliseconds ready_wait = 2 * s.timeout;
  auto ready = s.wait_get("ready", ready_wait);
  if (!ready || is_error(*ready)) {
    s.leave(false);
    if (!ready) throw Error(s.coordinator_silent(ready_wait));
    failure_of(*ready).raise();
  }
  const std::string token = ready->substr(3), report = s.report_path(token, s.rank);
  const std::string error_key = "error/" + std::to_string(s.rank);
  std::optional<Store> store;
  RankManifest mine;
  bool failed_here = false;
  try {
    store = Store::open_read_only(s.store_path, s.env);
    mine = write_shards(state, store->impl(), opts);
    mine.rank = s.rank;
    write_report(*s.env, report, encode_manifest(mine));
  } catch (const std::exception& e) {
    s.plane.set(s.key(error_key),
                Failure{error_kind(e), s.failed + "rank " + std::to_string(s.rank) + ": " + e.what()}.encode());
    failed_here = true;
  }
  if (s.plane.add(s.key("arrived"), 1) == s.world - 1) s.plane.set(s.key("all_in"), kOk);
  const std::string outcome = await_outcome(s, token);
  if (failed_here) s.plane.delete_key(s.key(error_key));
  s.leave(outcome == kOk);
  if (is_error(outcome)) {
    if (store) discard_packs(store->impl(), mine.packs);  // each rank removes its own packs
    s.env->remove_file(report);                          // if rank 0 gave up before reading it
    failure_of(outcome).raise();
  }
  return mine.stats;
}

}  // namespace

SaveResult save(const StateDict& state, const std::string& store_path, const std::string& checkpoint,
                ControlPlane& plane, const SaveOptions& options, const DistributedOptions& dist) {
  Save s{plane,
         store_path,
         checkpoint,
         dist.timeout,
         dist.env ? dist.env : posix_env(),
         plane.rank(),
         plane.world_size(),
         "tessera/save/" + std::to_string(plane.next_save_id()) + "/" + checkpoint + "/",
         "save of checkpoint '" + checkpoint + "' failed: "};
  SaveOptions opts = options;
  opts.world_size = s.world;
  return s.rank == 0 ? coordinate(s, state, opts) : participate(s, state, opts);
}

}  // namespace tessera
