#include "catalog/catalog.h"

#include <sqlite3.h>

#include <bit>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "catalog/layout_rows.h"
#include "catalog/maintenance.h"
#include "catalog/migrations.h"
#include "catalog/row_sum.h"
#include "catalog/upgrade.h"
#include "io/env.h"
#include "tessera/error.h"

namespace tessera::catalog {

std::string chunk_blob(const pack::ChunkId& id) { return std::string(reinterpret_cast<const char*>(id.bytes.data()), 16); }

pack::ChunkId chunk_from_blob(std::string_view b) {
  if (b.size() != 16) throw CatalogError("catalog: chunk id of " + std::to_string(b.size()) + " bytes");
  pack::ChunkId id;
  std::memcpy(id.bytes.data(), b.data(), 16);
  return id;
}

std::vector<uint64_t> sums_from_blob(std::string_view b) {
  std::vector<uint64_t> sums(b.size() / 8);
  std::memcpy(sums.data(), b.data(), sums.size() * 8);
  return sums;
}

pack::ChunkEntry read_chunk_row(const Statement& st, int col) {
  pack::ChunkEntry e;
  e.id = chunk_from_blob(st.column_blob_view(col));
  e.offset = static_cast<uint64_t>(st.column_int(col + 2));
  e.stored_len = static_cast<uint64_t>(st.column_int(col + 3));
  e.raw_len = static_cast<uint64_t>(st.column_int(col + 4));
  e.codec = static_cast<pack::Codec>(st.column_int(col + 5));
  e.elem_size = static_cast<uint8_t>(st.column_int(col + 6));
  e.stored_sum = std::bit_cast<uint64_t>(st.column_int(col + 7));
  e.block_sums = sums_from_blob(st.column_blob_view(col + 8));
  return e;
}

namespace {

// A damaged index can lead a lookup to another row: it must not pass for
// the chunk asked for.
void check_found(const pack::ChunkId& id, const ChunkLocation& found) {
  if (found.entry.id != id)
    throw CorruptionError("catalog damaged: looking up chunk " + id.hex() + " finds the row of chunk " +
                          found.entry.id.hex() + " (run tessera verify)");
}

// kChunkRowColumns from `col` on; `pack`: the pack's file name.
ChunkLocation read_location(const Statement& st, int col, std::string pack) {
  return ChunkLocation{std::move(pack), st.column_int(col + 1), read_chunk_row(st, col)};
}

}  // namespace

std::string shape_to_json(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

Shape shape_from_json(std::string_view json) {
  auto malformed = [&] { return CatalogError("catalog: malformed shape '" + std::string(json) + "'"); };
  Shape s;
  size_t i = 0;
  auto skip = [&] {
    while (i < json.size() && json[i] == ' ') ++i;
  };
  skip();
  if (i >= json.size() || json[i] != '[') throw malformed();
  ++i;
  skip();
  if (i < json.size() && json[i] == ']') return s;
  while (true) {
    skip();
    int64_t v = 0;
    const auto [end, err] = std::from_chars(json.data() + i, json.data() + json.size(), v);
    if (err != std::errc()) throw malformed();
    s.push_back(v);
    i = static_cast<size_t>(end - json.data());
    skip();
    if (i < json.size() && json[i] == ',') {
      ++i;
      continue;
    }
    if (i < json.size() && json[i] == ']') return s;
    throw malformed();
  }
}

std::string now_iso8601() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int Catalog::latest_schema_version() { return static_cast<int>(migrations().size()); }

namespace {

// A writer killed inside a transaction leaves a hot journal (catalog.db-journal)
// that only a read-write connection can roll back; until then every
// read-only open fails. A reader that finds a journal therefore lets a
// short-lived read-write connection look first: SQLite rolls back only a
// journal that no live writer holds, so this is safe while others write.
void roll_back_hot_journal(Env& env, const std::string& path, const char* vfs) {
  if (!env.exists(path + "-journal")) return;
  try {
    Db rw(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, vfs);
    rw.pragma_int("schema_version");
  } catch (const CatalogError&) {
    // Not writable from here: the read-only open reports it.
  }
}

}  // namespace

Catalog Catalog::open(const std::string& path, Mode mode, bool create, std::shared_ptr<Env> env) {
  auto vfs = env->lets_sqlite_use_os_files() ? nullptr : std::make_unique<EnvVfs>(env);
  const char* vfs_name = vfs ? vfs->name() : nullptr;
  if (mode == Mode::kReadOnly) roll_back_hot_journal(*env, path, vfs_name);
  int flags = mode == Mode::kReadOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
  if (mode == Mode::kReadWrite && create) flags |= SQLITE_OPEN_CREATE;
  Db db_handle(path, flags | SQLITE_OPEN_FULLMUTEX, vfs_name);
  Catalog cat(env, std::move(vfs), std::move(db_handle));
  Db& db = cat.db_;
  // Catch files that are not SQLite at all before anything else.
  try {
    db.pragma_int("schema_version");
  } catch (const CatalogError& e) {
    if (mode == Mode::kReadOnly && cat.env().exists(path + "-journal"))
      throw CatalogError("catalog '" + path + "' was left mid-transaction by a writer that died (" + path +
                         "-journal); open the store once for writing to roll it back (" + e.what() + ")");
    throw CatalogError("'" + path + "' is not a tessera catalog (" + e.what() + ")");
  }
  // The three reads in one read transaction: a store another process is
  // creating right now is seen before its creation or after, never between
  // (an empty application_id with tables would read as a foreign database).
  int64_t app = 0, version = 0, tables = 0;
  {
    ReadScope read(db);
    app = db.pragma_int("application_id");
    version = db.pragma_int("user_version");
    Statement st = db.prepare("SELECT count(*) FROM sqlite_schema");
    st.step();
    tables = st.column_int(0);
  }
  if (app != kApplicationId && !(app == 0 && tables == 0))
    throw CatalogError("'" + path + "' is not a tessera catalog (application_id " + std::to_string(app) + ")");
  if (version > latest_schema_version())
    throw SchemaTooNewError("catalog '" + path + "' has schema version " + std::to_string(version) +
                            ", newer than this tessera supports (" + std::to_string(latest_schema_version()) +
                            "); upgrade tessera to read it");
  db.exec("PRAGMA foreign_keys = ON");
  // Page cache (SQLite's default is 2 MiB): writers up to 64 MiB, as a commit
  // at a million chunk references touches ~100 MiB of pages; readers (one
  // per rank) up to 16 MiB, enough for the index pages a load plan revisits.
  db.exec(mode == Mode::kReadWrite ? "PRAGMA cache_size = -65536" : "PRAGMA cache_size = -16384");
  if (mode == Mode::kReadWrite) {
    db.exec("PRAGMA journal_mode = DELETE");  // no WAL: stores may live on network filesystems
    db.exec("PRAGMA synchronous = EXTRA");
    cat.migrate(path);
  } else if (version < latest_schema_version()) {
    if (tables == 0) throw CatalogError("'" + path + "' is not a tessera catalog (empty database)");
    throw CatalogError("catalog '" + path + "' has schema version " + std::to_string(version) +
                       " and needs migrating to " + std::to_string(latest_schema_version()) +
                       ": open the store once for writing");
  }
  return cat;
}

void Catalog::migrate(const std::string& path) {
  // A current catalog is not written at all: opening a store for writing
  // must work on a full disk (to rm and gc), and costs no fsync.
  if (db_.pragma_int("user_version") == latest_schema_version() && db_.pragma_int("application_id") == kApplicationId)
    return;
  // After some errors (a full disk, an I/O error) SQLite has already rolled
  // back; the Transaction's rollback then fails quietly, and the real cause
  // propagates.
  Transaction tx(db_, Transaction::Kind::kWrite);
  const int64_t version = db_.pragma_int("user_version");
  if (version > latest_schema_version())
    throw SchemaTooNewError("catalog '" + path + "' has schema version " + std::to_string(version) +
                            ", newer than this tessera supports");
  for (const Migration& m : migrations()) {
    if (m.version <= version) continue;
    db_.exec(m.sql);
    if (m.version == kLayoutsVersion) convert_to_layouts(db_);
    if (m.version == kRowSumsVersion) add_row_sums(db_);
    db_.exec("PRAGMA user_version = " + std::to_string(m.version));
  }
  db_.exec("PRAGMA application_id = " + std::to_string(kApplicationId));
  tx.commit();
}

std::vector<std::string> Catalog::integrity_problems(int max) {
  std::vector<std::string> out;
  Statement st = db_.prepare("PRAGMA integrity_check(" + std::to_string(max) + ")");
  while (st.step())
    if (std::string line = st.column_text(0); line != "ok") out.push_back(std::move(line));
  return out;
}

int Catalog::schema_version() { return static_cast<int>(db_.pragma_int("user_version")); }

static constexpr const char* kCheckpointColumns = R"sql(
  k.checkpoint_id, k.name, k.created_at, k.world_size, k.metadata, k.save_token,
  k.tensor_count, k.value_count, k.logical_bytes, k.stored_bytes, k.added_bytes)sql";

static CheckpointInfo read_checkpoint(const Statement& st) {
  CheckpointInfo c;
  c.id = st.column_int(0);
  c.name = st.column_text(1);
  c.created_at = st.column_text(2);
  c.world_size = st.column_int(3);
  c.metadata = st.column_text(4);
  c.save_token = st.column_text(5);
  c.tensor_count = st.column_int(6);
  c.value_count = st.column_int(7);
  c.logical_bytes = st.column_int(8);
  c.stored_bytes = st.column_int(9);
  c.added_bytes = st.column_int(10);
  return c;
}

std::vector<CheckpointInfo> Catalog::list_checkpoints() {
  Statement st = db_.prepare(std::string("SELECT ") + kCheckpointColumns + " FROM checkpoints k ORDER BY k.checkpoint_id");
  std::vector<CheckpointInfo> out;
  while (st.step()) out.push_back(read_checkpoint(st));
  return out;
}

int64_t checkpoint_row_sum(const CheckpointInfo& c, std::string_view tensor_ids) {
  return RowSum()
      .add(c.id).add(c.name).add(c.created_at).add(c.world_size).add(c.metadata).add(c.save_token)
      .add(tensor_ids).add(c.tensor_count).add(c.value_count)
      .add(c.logical_bytes).add(c.stored_bytes).add(c.added_bytes)
      .value();
}

Value value_of_column(const Statement& st, int col, const std::string& kind) {
  if (kind == "int") return st.column_int(col);
  if (kind == "float") return st.column_double(col);
  if (kind == "string") return st.column_text(col);
  return Bytes{st.column_blob(col)};
}

int64_t value_row_sum(int64_t checkpoint_id, const ValueRecord& v) {
  RowSum sum;
  sum.add(checkpoint_id).add(v.name).add(value_kind(v.value));
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Bytes>) sum.add(x.data);
        else if constexpr (std::is_same_v<T, std::string>) sum.add(x);
        else if constexpr (std::is_same_v<T, double>) sum.add(std::bit_cast<int64_t>(x));
        else sum.add(x);
      },
      v.value);
  return sum.value();
}

// Loads trust a checkpoint row only when it is the one asked for and passes its checksum.
std::optional<CheckpointInfo> Catalog::find_checkpoint(const std::string& name) {
  Statement st = db_.prepare(std::string("SELECT ") + kCheckpointColumns +
                             ", k.tensor_ids, k.row_sum FROM checkpoints k WHERE k.name = ?1");
  st.bind(1, name);
  if (!st.step()) return std::nullopt;
  CheckpointInfo c = read_checkpoint(st);
  if (c.name != name || checkpoint_row_sum(c, st.column_blob(11)) != st.column_int(12))
    throw CorruptionError("catalog damaged: the row of checkpoint '" + name +
                          "' fails its checksum (run tessera verify)");
  return c;
}

std::optional<int64_t> Catalog::previous_checkpoint(int64_t checkpoint_id) {
  Statement st = db_.prepare("SELECT max(checkpoint_id) FROM checkpoints WHERE checkpoint_id < ?1");
  st.bind(1, checkpoint_id);
  if (!st.step() || st.column_type(0) == SQLITE_NULL) return std::nullopt;
  return st.column_int(0);
}

std::vector<TensorRecord> Catalog::tensors(int64_t checkpoint_id, bool with_pieces) {
  ReadScope scope(db_);
  return read_tensors(db_, checkpoint_tensor_ids(db_, checkpoint_id), with_pieces);
}

std::vector<TensorRecord> Catalog::tensors(int64_t checkpoint_id, const ReadFilter& filter) {
  ReadScope scope(db_);
  return read_tensors(db_, checkpoint_tensor_ids(db_, checkpoint_id), true, filter);
}

std::optional<TensorRecord> Catalog::tensor(int64_t checkpoint_id, const std::string& name) {
  const std::vector<int64_t> held = checkpoint_tensor_ids(db_, checkpoint_id);  // ascending
  Statement st = db_.prepare("SELECT tensor_id FROM tensors WHERE name = ?1");
  st.bind(1, name);
  while (st.step()) {
    const int64_t id = st.column_int(0);
    if (std::binary_search(held.begin(), held.end(), id)) return read_tensors(db_, {id}, true).front();
  }
  return std::nullopt;
}

std::vector<ValueRecord> Catalog::values(int64_t checkpoint_id) {
  ReadScope scope(db_);
  Statement st = db_.prepare(
      "SELECT name, kind, value, checkpoint_id, row_sum FROM entries WHERE checkpoint_id = ?1 ORDER BY name");
  st.bind(1, checkpoint_id);
  std::vector<ValueRecord> out;
  while (st.step()) {
    ValueRecord v{st.column_text(0), value_of_column(st, 2, st.column_text(1))};
    if (st.column_int(3) != checkpoint_id || value_row_sum(checkpoint_id, v) != st.column_int(4))
      throw CorruptionError("catalog damaged: the row of value '" + v.name + "' of checkpoint id " +
                            std::to_string(checkpoint_id) + " fails its checksum (run tessera verify)");
    out.push_back(std::move(v));
  }
  Statement count = db_.prepare("SELECT value_count FROM checkpoints WHERE checkpoint_id = ?1");
  count.bind(1, checkpoint_id);
  if (count.step() && count.column_int(0) != static_cast<int64_t>(out.size()))
    throw CorruptionError("catalog damaged: checkpoint id " + std::to_string(checkpoint_id) + " records " +
                          std::to_string(count.column_int(0)) + " values, the catalog holds " +
                          std::to_string(out.size()) + " (run tessera verify)");
  return out;
}

Statement& Catalog::cached(std::optional<Statement>& slot, const char* sql) {
  if (!slot) slot.emplace(db_.prepare(sql));
  slot->reset();  // also after a step that threw
  return *slot;
}

std::optional<ChunkLocation> Catalog::locate(const pack::ChunkId& id) {
  static const std::string sql =
      std::string("SELECT ") + kChunkRowColumns +
      ", p.name FROM chunks c JOIN packs p USING (pack_id) WHERE c.chunk_id = ?1";
  Statement& st = cached(locate_, sql.c_str());
  st.bind_blob(1, id.bytes.data(), 16);
  std::optional<ChunkLocation> out;
  if (st.step()) out = read_location(st, 0, st.column_text(9));
  st.reset();
  if (out) check_found(id, *out);
  return out;
}

std::vector<std::optional<ChunkLocation>> Catalog::locate_all(const std::vector<pack::ChunkId>& ids) {
  std::vector<pack::ChunkId> sorted = ids;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::vector<std::optional<ChunkLocation>> found = locate_sorted(sorted);
  std::vector<std::optional<ChunkLocation>> out(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const size_t k = static_cast<size_t>(std::lower_bound(sorted.begin(), sorted.end(), ids[i]) - sorted.begin());
    if (found[k] && found[k]->pack.empty())
      throw CorruptionError("catalog damaged: chunk " + ids[i].hex() + " names pack row " +
                            std::to_string(found[k]->pack_id) + ", which is missing (run tessera verify)");
    if (sorted.size() == ids.size()) out[i] = std::move(found[k]);  // no repeats: each row goes to one slot
    else out[i] = found[k];
  }
  return out;
}

std::vector<std::optional<ChunkLocation>> Catalog::locate_sorted(const std::vector<pack::ChunkId>& ids) {
  // A seek costs about as much as stepping over kStepsPerSeek rows. Ids are
  // hashes, spread evenly: the rows stepped so far per unit of id prefix
  // passed tell how many rows lie before the next id, so the walk steps to
  // it or seeks it, whichever is cheaper. Until it knows, it steps at most
  // kStepsPerSeek rows.
  constexpr double kStepsPerSeek = 4;
  ReadScope scope(db_);
  // Pack names read once (a store has thousands of packs, a walk may want
  // millions of chunks): each chunk costs a step, not a join.
  std::unordered_map<int64_t, std::string> pack_names;
  {
    Statement st = db_.prepare("SELECT pack_id, name FROM packs");
    while (st.step()) pack_names.emplace(st.column_int(0), st.column_text(1));
  }
  static const std::string sql =
      std::string("SELECT ") + kChunkRowColumns + " FROM chunks c WHERE c.chunk_id >= ?1 ORDER BY c.chunk_id";
  Statement& st = cached(locate_from_, sql.c_str());
  std::vector<std::optional<ChunkLocation>> out(ids.size());
  double rows_stepped = 0, prefix_passed = 0;  // over every walk so far
  size_t i = 0;
  bool table_ended = false;
  while (i < ids.size() && !table_ended) {
    st.reset();
    st.bind_blob_static(1, ids[i].bytes.data(), 16);
    std::optional<uint64_t> previous_row;  // the prefix of this walk's previous row
    double skipped = 0;
    while (true) {
      if (!st.step()) {
        table_ended = true;  // the ids left are not in the catalog
        break;
      }
      const pack::ChunkId row = chunk_from_blob(st.column_blob_view(0));
      if (previous_row) {  // a step (a seek's row tells nothing of the density)
        rows_stepped += 1;
        prefix_passed += static_cast<double>(row.prefix() - *previous_row);
      }
      previous_row = row.prefix();
      while (i < ids.size() && ids[i] < row) ++i;  // not in the catalog
      if (i == ids.size()) break;
      if (row == ids[i]) {
        const auto pack = pack_names.find(st.column_int(1));
        out[i] = read_location(st, 0, pack == pack_names.end() ? std::string() : pack->second);
        if (++i == ids.size()) break;
        skipped = 0;
      } else {
        ++skipped;
      }
      // Rows before ids[i], expected: step on, or seek it.
      const double ahead = prefix_passed > 0 ? static_cast<double>(ids[i].prefix() - row.prefix()) * rows_stepped / prefix_passed
                                             : (skipped < kStepsPerSeek ? 0 : kStepsPerSeek + 1);
      if (ahead > kStepsPerSeek) break;
    }
  }
  st.reset();  // a statement left stepping holds the catalog's read lock
  return out;
}

bool Catalog::has_chunk(const pack::ChunkId& id) {
  Statement& st = cached(has_chunk_, "SELECT 1 FROM chunks WHERE chunk_id = ?1");
  st.bind_blob(1, id.bytes.data(), 16);
  const bool found = st.step();
  st.reset();
  return found;
}

std::vector<pack::ChunkId> Catalog::chunk_ids(int64_t checkpoint_id) {
  std::unordered_set<pack::ChunkId, pack::ChunkIdHash> seen;
  std::vector<pack::ChunkId> out;
  std::unordered_set<int64_t> layouts;
  for (const TensorRecord& t : tensors(checkpoint_id))
    if (layouts.insert(t.layout_id).second)
      for (const Piece& p : t.pieces)
        if (seen.insert(p.chunk).second) out.push_back(p.chunk);
  return out;
}

namespace {

// A pack footer entry with the id of its packs row (the id copied in, so
// that sorting by it does not chase pointers).
struct NewChunk {
  pack::ChunkId id;
  const pack::ChunkEntry* entry;
  int64_t pack_id;
};

// A tensor name that appears twice, if any.
std::optional<std::string> listed_twice(const std::vector<TensorRecord>& tensors) {
  std::vector<std::string_view> names;
  names.reserve(tensors.size());
  for (const TensorRecord& t : tensors) names.push_back(t.name);
  std::sort(names.begin(), names.end());
  auto it = std::adjacent_find(names.begin(), names.end());
  if (it == names.end()) return std::nullopt;
  return std::string(*it);
}

constexpr const char* kChunkColumnsIn =
    " INTO chunks (chunk_id, pack_id, offset, stored_len, raw_len, codec, elem_size, stored_sum, block_sums)";

// Binds one chunk row's 9 values after parameter `base`.
void bind_chunk(Statement& st, int base, const NewChunk& n) {
  const pack::ChunkEntry& e = *n.entry;
  // block_sums: the u64 array as it is in memory (little-endian hosts only, as the format says).
  st.bind_blob_static(base + 1, n.id.bytes.data(), 16)
      .bind(base + 2, n.pack_id)
      .bind(base + 3, static_cast<int64_t>(e.offset))
      .bind(base + 4, static_cast<int64_t>(e.stored_len))
      .bind(base + 5, static_cast<int64_t>(e.raw_len))
      .bind(base + 6, static_cast<int64_t>(e.codec))
      .bind(base + 7, static_cast<int64_t>(e.elem_size))
      .bind(base + 8, std::bit_cast<int64_t>(e.stored_sum))
      .bind_blob_static(base + 9, e.block_sums.data(), e.block_sums.size() * 8);
}

// Inserts a chunks row per footer entry, in id order (B-tree pages are then
// visited once each); a chunk already committed keeps its row, and of two
// entries with one id (two packs of this save hold the same bytes) the
// first is kept. Returns the stored lengths of the rows inserted.
//
// Rows go kRowsPerStatement to a plain INSERT. A batch that meets a committed
// chunk fails as a whole, undone, and is inserted again row by row with
// INSERT OR IGNORE, which tells which rows it added.
FreshChunks insert_chunks(Db& db, std::vector<NewChunk>& chunks) {
  std::sort(chunks.begin(), chunks.end(), [](const NewChunk& a, const NewChunk& b) { return a.id < b.id; });
  chunks.erase(std::unique(chunks.begin(), chunks.end(), [](const NewChunk& a, const NewChunk& b) { return a.id == b.id; }),
               chunks.end());
  FreshChunks fresh(chunks.size());
  Statement batch = db.prepare(values_sql(std::string("INSERT") + kChunkColumnsIn, 9, kRowsPerStatement));
  Statement one = db.prepare(values_sql(std::string("INSERT OR IGNORE") + kChunkColumnsIn, 9, 1));
  const auto row_by_row = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; ++i) {
      bind_chunk(one, 0, chunks[i]);
      one.run();
      if (db.changes() == 1) fresh.add(chunks[i].id, static_cast<int64_t>(chunks[i].entry->stored_len));
    }
  };
  size_t i = 0;
  for (; i + kRowsPerStatement <= chunks.size(); i += kRowsPerStatement) {
    for (size_t j = 0; j < kRowsPerStatement; ++j) bind_chunk(batch, static_cast<int>(9 * j), chunks[i + j]);
    if (!batch.try_run()) {
      row_by_row(i, i + kRowsPerStatement);
      continue;
    }
    for (size_t j = i; j < i + kRowsPerStatement; ++j) fresh.add(chunks[j].id, static_cast<int64_t>(chunks[j].entry->stored_len));
  }
  row_by_row(i, chunks.size());
  return fresh;
}

// The steps of Catalog::commit, each inside its transaction.

// Removes checkpoint `name` for an overwrite; returns whether there was one.
// Its values go with it (ON DELETE CASCADE); its tensors rows and layouts
// stay for the new checkpoint to reuse, and the rest is pruned after it.
bool remove_replaced(Db& db, const NewCheckpoint& c) {
  Statement st = db.prepare("SELECT 1 FROM checkpoints WHERE name = ?1");
  st.bind(1, c.name);
  if (!st.step()) return false;
  if (!c.replace_existing) throw CatalogError("checkpoint '" + c.name + "' already exists");
  db.prepare("DELETE FROM checkpoints WHERE name = ?1").bind(1, c.name).run();
  return true;
}

// Pack rows and their chunk rows; a chunk already committed keeps its row.
// Returns the chunks this commit added.
FreshChunks insert_packs(Catalog& cat, const std::vector<pack::PackInfo>& packs, const std::string& now) {
  std::vector<NewChunk> new_chunks;
  for (const auto& p : packs) {
    const int64_t pack_id = upsert_pack(cat, p.name, p.size, now);
    for (const auto& e : p.chunks) new_chunks.push_back(NewChunk{e.id, &e, pack_id});
  }
  return insert_chunks(cat.db(), new_chunks);
}

// The checkpoints row with its totals and its checksum; returns its id.
int64_t insert_checkpoint_row(Db& db, const NewCheckpoint& c, const TensorList& list, int64_t added_bytes,
                              const std::string& now) {
  const std::string ids = encode_ids(list.ids);
  Statement ins = db.prepare(
      "INSERT INTO checkpoints (name, created_at, world_size, metadata, save_token, tensor_ids, tensor_count, "
      "value_count, logical_bytes, stored_bytes, added_bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
  ins.bind(1, c.name)
      .bind(2, now)
      .bind(3, c.world_size)
      .bind(4, c.metadata)
      .bind(5, c.save_token)
      .bind_blob(6, ids.data(), ids.size())
      .bind(7, static_cast<int64_t>(list.ids.size()))
      .bind(8, static_cast<int64_t>(c.values.size()))
      .bind(9, list.logical_bytes)
      .bind(10, list.stored_bytes)
      .bind(11, added_bytes);
  ins.run();
  const int64_t id = db.last_insert_rowid();
  const CheckpointInfo row{id, c.name, now, c.world_size, c.metadata, static_cast<int64_t>(list.ids.size()),
                           static_cast<int64_t>(c.values.size()), list.logical_bytes, list.stored_bytes, added_bytes,
                           c.save_token};
  db.prepare("UPDATE checkpoints SET row_sum = ?1 WHERE checkpoint_id = ?2")
      .bind(1, checkpoint_row_sum(row, ids)).bind(2, id).run();
  return id;
}

void insert_values(Db& db, int64_t checkpoint_id, const std::vector<ValueRecord>& values) {
  Statement ins = db.prepare("INSERT INTO entries (checkpoint_id, name, kind, value, row_sum) VALUES (?1, ?2, ?3, ?4, ?5)");
  for (const auto& v : values) {
    ins.bind(1, checkpoint_id).bind(2, v.name).bind(3, std::string_view(value_kind(v.value)))
        .bind(5, value_row_sum(checkpoint_id, v));
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, Bytes>) ins.bind_blob(4, x.data.data(), x.data.size());
          else if constexpr (std::is_same_v<T, std::string>) ins.bind(4, std::string_view(x));
          else ins.bind(4, x);
        },
        v.value);
    ins.run();
  }
}

}  // namespace

int64_t Catalog::commit(const NewCheckpoint& c, const std::function<void()>& before_commit) {
  Transaction tx(db_, Transaction::Kind::kWrite);
  const bool replaced = remove_replaced(db_, c);
  if (!c.packs_dir.empty())
    for (const auto& p : c.packs)
      if (!env_->exists(c.packs_dir + "/" + p.name))
        throw CatalogError("pack '" + p.name + "' written by this save is gone from '" + c.packs_dir +
                           "' (removed by gc after its grace period?)");
  if (auto twice = listed_twice(c.tensors)) throw CatalogError("tensor '" + *twice + "' is listed twice");
  const std::string now = now_iso8601();
  const FreshChunks added = insert_packs(*this, c.packs, now);
  // Tensors: a layout committed before is reused as it is.
  LayoutWriter layouts(db_, &added);
  TensorList list;
  for (const TensorRecord& t : c.tensors) list.add(layouts.put(t));
  const int64_t id = insert_checkpoint_row(db_, c, list, added.stored_bytes(), now);
  insert_values(db_, id, c.values);
  if (replaced) prune_unreferenced(db_);
  if (before_commit) before_commit();
  tx.commit();
  return id;
}

}  // namespace tessera::catalog
