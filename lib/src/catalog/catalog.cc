#include "catalog/catalog.h"

#include <sqlite3.h>

#include <bit>
#include <chrono>
#include <cstring>
#include <ctime>
#include <unordered_map>

#include "catalog/migrations.h"
#include "io/file.h"

namespace tessera::catalog {

std::string chunk_blob(const ChunkId& id) { return std::string(reinterpret_cast<const char*>(id.bytes.data()), 16); }

ChunkId chunk_from_blob(const std::string& b) {
  if (b.size() != 16) throw CatalogError("catalog: chunk id of " + std::to_string(b.size()) + " bytes");
  ChunkId id;
  std::memcpy(id.bytes.data(), b.data(), 16);
  return id;
}

std::vector<uint64_t> sums_from_blob(const std::string& b) {
  std::vector<uint64_t> sums(b.size() / 8);
  std::memcpy(sums.data(), b.data(), sums.size() * 8);
  return sums;
}

namespace {

std::string sums_blob(const std::vector<uint64_t>& sums) {
  return std::string(reinterpret_cast<const char*>(sums.data()), sums.size() * 8);
}

// SELECT list and reader for a chunk row joined with its pack.
constexpr const char* kChunkColumns =
    "c.chunk_id, p.name, c.offset, c.stored_len, c.raw_len, c.codec, c.elem_size, c.stored_sum, c.block_sums";

ChunkLocation read_location(const Statement& st, int col) {
  ChunkLocation loc;
  loc.entry.id = chunk_from_blob(st.column_blob(col));
  loc.pack = st.column_text(col + 1);
  loc.entry.offset = static_cast<uint64_t>(st.column_int(col + 2));
  loc.entry.stored_len = static_cast<uint64_t>(st.column_int(col + 3));
  loc.entry.raw_len = static_cast<uint64_t>(st.column_int(col + 4));
  loc.entry.codec = static_cast<Codec>(st.column_int(col + 5));
  loc.entry.elem_size = static_cast<uint8_t>(st.column_int(col + 6));
  loc.entry.stored_sum = std::bit_cast<uint64_t>(st.column_int(col + 7));
  loc.entry.block_sums = sums_from_blob(st.column_blob(col + 8));
  return loc;
}

}  // namespace

std::string shape_to_json(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

Shape shape_from_json(const std::string& json) {
  Shape s;
  size_t i = 0;
  auto skip = [&] {
    while (i < json.size() && json[i] == ' ') ++i;
  };
  skip();
  if (i >= json.size() || json[i] != '[') throw CatalogError("catalog: malformed shape '" + json + "'");
  ++i;
  skip();
  if (i < json.size() && json[i] == ']') return s;
  while (true) {
    skip();
    size_t used = 0;
    try {
      s.push_back(std::stoll(json.substr(i), &used));
    } catch (...) {
      throw CatalogError("catalog: malformed shape '" + json + "'");
    }
    i += used;
    skip();
    if (i < json.size() && json[i] == ',') {
      ++i;
      continue;
    }
    if (i < json.size() && json[i] == ']') return s;
    throw CatalogError("catalog: malformed shape '" + json + "'");
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
void roll_back_hot_journal(const std::string& path) {
  if (!io::exists(path + "-journal")) return;
  try {
    Db rw(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX);
    rw.pragma_int("schema_version");
  } catch (const CatalogError&) {
    // Not writable from here: the read-only open reports it.
  }
}

}  // namespace

Catalog Catalog::open(const std::string& path, Mode mode, bool create) {
  if (mode == Mode::kReadOnly) roll_back_hot_journal(path);
  int flags = mode == Mode::kReadOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
  if (mode == Mode::kReadWrite && create) flags |= SQLITE_OPEN_CREATE;
  Catalog cat(Db(path, flags | SQLITE_OPEN_FULLMUTEX));
  Db& db = cat.db_;
  // Catch files that are not SQLite at all before anything else.
  try {
    db.pragma_int("schema_version");
  } catch (const CatalogError& e) {
    if (mode == Mode::kReadOnly && io::exists(path + "-journal"))
      throw CatalogError("catalog '" + path + "' was left mid-transaction by a writer that died (" + path +
                         "-journal); open the store once for writing to roll it back (" + e.what() + ")");
    throw CatalogError("'" + path + "' is not a tessera catalog (" + e.what() + ")");
  }
  const int64_t app = db.pragma_int("application_id");
  const int64_t version = db.pragma_int("user_version");
  const int64_t tables = [&] {
    Statement st = db.prepare("SELECT count(*) FROM sqlite_schema");
    st.step();
    return st.column_int(0);
  }();
  if (app != kApplicationId && !(app == 0 && tables == 0))
    throw CatalogError("'" + path + "' is not a tessera catalog (application_id " + std::to_string(app) + ")");
  if (version > latest_schema_version())
    throw SchemaTooNewError("catalog '" + path + "' has schema version " + std::to_string(version) +
                            ", newer than this tessera supports (" + std::to_string(latest_schema_version()) +
                            "); upgrade tessera to read it");
  db.exec("PRAGMA foreign_keys = ON");
  if (mode == Mode::kReadWrite) {
    db.exec("PRAGMA journal_mode = DELETE");  // no WAL: stores may live on network filesystems
    db.exec("PRAGMA synchronous = FULL");
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
  db_.exec("BEGIN IMMEDIATE");
  try {
    int64_t version = db_.pragma_int("user_version");
    if (version > latest_schema_version())
      throw SchemaTooNewError("catalog '" + path + "' has schema version " + std::to_string(version) +
                              ", newer than this tessera supports");
    for (const Migration& m : migrations()) {
      if (m.version <= version) continue;
      db_.exec(m.sql);
      db_.exec("PRAGMA user_version = " + std::to_string(m.version));
    }
    db_.exec("PRAGMA application_id = " + std::to_string(kApplicationId));
    db_.exec("COMMIT");
  } catch (...) {
    db_.exec("ROLLBACK");
    throw;
  }
}

int Catalog::schema_version() { return static_cast<int>(db_.pragma_int("user_version")); }

static constexpr const char* kCheckpointSelect = R"sql(
  SELECT k.checkpoint_id, k.name, k.created_at, k.world_size, k.metadata, k.save_token,
    (SELECT count(*) FROM tensors t WHERE t.checkpoint_id = k.checkpoint_id),
    (SELECT count(*) FROM entries e WHERE e.checkpoint_id = k.checkpoint_id),
    (SELECT coalesce(sum(c.raw_len), 0) FROM tensors t JOIN tensor_chunks tc USING (tensor_id)
       JOIN chunks c USING (chunk_id) WHERE t.checkpoint_id = k.checkpoint_id),
    (SELECT coalesce(sum(c.stored_len), 0) FROM chunks c WHERE c.chunk_id IN
       (SELECT tc.chunk_id FROM tensors t JOIN tensor_chunks tc USING (tensor_id)
        WHERE t.checkpoint_id = k.checkpoint_id)),
    (SELECT coalesce(sum(c.stored_len), 0) FROM chunks c WHERE c.chunk_id IN
       (SELECT tc.chunk_id FROM tensors t JOIN tensor_chunks tc USING (tensor_id)
        WHERE t.checkpoint_id = k.checkpoint_id)
     AND NOT EXISTS (SELECT 1 FROM tensor_chunks e JOIN tensors et USING (tensor_id)
        WHERE e.chunk_id = c.chunk_id AND et.checkpoint_id < k.checkpoint_id))
  FROM checkpoints k)sql";

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
  Statement st = db_.prepare(std::string(kCheckpointSelect) + " ORDER BY k.checkpoint_id");
  std::vector<CheckpointInfo> out;
  while (st.step()) out.push_back(read_checkpoint(st));
  return out;
}

std::optional<CheckpointInfo> Catalog::find_checkpoint(const std::string& name) {
  Statement st = db_.prepare(std::string(kCheckpointSelect) + " WHERE k.name = ?1");
  st.bind(1, name);
  if (!st.step()) return std::nullopt;
  return read_checkpoint(st);
}

std::optional<int64_t> Catalog::previous_checkpoint(int64_t checkpoint_id) {
  Statement st = db_.prepare("SELECT max(checkpoint_id) FROM checkpoints WHERE checkpoint_id < ?1");
  st.bind(1, checkpoint_id);
  if (!st.step() || st.column_type(0) == SQLITE_NULL) return std::nullopt;
  return st.column_int(0);
}

std::vector<TensorRecord> Catalog::tensors(int64_t checkpoint_id, bool with_pieces) {
  std::vector<TensorRecord> out;
  std::unordered_map<int64_t, size_t> index;
  Statement st = db_.prepare(
      "SELECT tensor_id, name, dtype, elem_size, shape FROM tensors WHERE checkpoint_id = ?1 ORDER BY name");
  st.bind(1, checkpoint_id);
  while (st.step()) {
    TensorRecord t;
    t.id = st.column_int(0);
    t.name = st.column_text(1);
    t.dtype = st.column_text(2);
    t.elem_size = st.column_int(3);
    t.shape = shape_from_json(st.column_text(4));
    index[t.id] = out.size();
    out.push_back(std::move(t));
  }
  if (!with_pieces) return out;
  Statement pc = db_.prepare(
      "SELECT tc.tensor_id, tc.offsets, tc.sizes, tc.chunk_id FROM tensor_chunks tc "
      "JOIN tensors t USING (tensor_id) WHERE t.checkpoint_id = ?1");
  pc.bind(1, checkpoint_id);
  while (pc.step()) {
    auto& t = out[index.at(pc.column_int(0))];
    t.pieces.push_back(Piece{Box{shape_from_json(pc.column_text(1)), shape_from_json(pc.column_text(2))},
                             chunk_from_blob(pc.column_blob(3))});
  }
  return out;
}

std::optional<TensorRecord> Catalog::tensor(int64_t checkpoint_id, const std::string& name) {
  Statement st = db_.prepare(
      "SELECT tensor_id, name, dtype, elem_size, shape FROM tensors WHERE checkpoint_id = ?1 AND name = ?2");
  st.bind(1, checkpoint_id).bind(2, name);
  if (!st.step()) return std::nullopt;
  TensorRecord t;
  t.id = st.column_int(0);
  t.name = st.column_text(1);
  t.dtype = st.column_text(2);
  t.elem_size = st.column_int(3);
  t.shape = shape_from_json(st.column_text(4));
  Statement pc = db_.prepare("SELECT offsets, sizes, chunk_id FROM tensor_chunks WHERE tensor_id = ?1");
  pc.bind(1, t.id);
  while (pc.step())
    t.pieces.push_back(Piece{Box{shape_from_json(pc.column_text(0)), shape_from_json(pc.column_text(1))},
                             chunk_from_blob(pc.column_blob(2))});
  return t;
}

std::vector<ValueRecord> Catalog::values(int64_t checkpoint_id) {
  Statement st = db_.prepare("SELECT name, kind, value FROM entries WHERE checkpoint_id = ?1 ORDER BY name");
  st.bind(1, checkpoint_id);
  std::vector<ValueRecord> out;
  while (st.step()) {
    std::string kind = st.column_text(1);
    ValueRecord v{st.column_text(0), Value{}};
    if (kind == "int") v.value = st.column_int(2);
    else if (kind == "float") v.value = st.column_double(2);
    else if (kind == "string") v.value = st.column_text(2);
    else v.value = Bytes{st.column_blob(2)};
    out.push_back(std::move(v));
  }
  return out;
}

std::optional<ChunkLocation> Catalog::locate(const ChunkId& id) {
  Statement st = db_.prepare(std::string("SELECT ") + kChunkColumns +
                             " FROM chunks c JOIN packs p USING (pack_id) WHERE c.chunk_id = ?1");
  std::string blob = chunk_blob(id);
  st.bind_blob(1, blob.data(), blob.size());
  if (!st.step()) return std::nullopt;
  return read_location(st, 0);
}

bool Catalog::has_chunk(const ChunkId& id) {
  Statement st = db_.prepare("SELECT 1 FROM chunks WHERE chunk_id = ?1");
  std::string blob = chunk_blob(id);
  st.bind_blob(1, blob.data(), blob.size());
  return st.step();
}

std::vector<ChunkId> Catalog::chunk_ids(int64_t checkpoint_id) {
  Statement st = db_.prepare(
      "SELECT DISTINCT tc.chunk_id FROM tensor_chunks tc JOIN tensors t USING (tensor_id) "
      "WHERE t.checkpoint_id = ?1");
  st.bind(1, checkpoint_id);
  std::vector<ChunkId> out;
  while (st.step()) out.push_back(chunk_from_blob(st.column_blob(0)));
  return out;
}

std::vector<std::string> Catalog::tensors_using(int64_t checkpoint_id, const ChunkId& id) {
  Statement st = db_.prepare(
      "SELECT DISTINCT t.name FROM tensor_chunks tc JOIN tensors t USING (tensor_id) "
      "WHERE t.checkpoint_id = ?1 AND tc.chunk_id = ?2 ORDER BY t.name");
  std::string blob = chunk_blob(id);
  st.bind(1, checkpoint_id).bind_blob(2, blob.data(), blob.size());
  std::vector<std::string> out;
  while (st.step()) out.push_back(st.column_text(0));
  return out;
}

int64_t Catalog::commit(const NewCheckpoint& c, const std::function<void()>& before_commit) {
  db_.exec("BEGIN IMMEDIATE");
  try {
    {
      Statement st = db_.prepare("SELECT 1 FROM checkpoints WHERE name = ?1");
      st.bind(1, c.name);
      if (st.step()) {
        if (!c.replace_existing) throw CatalogError("checkpoint '" + c.name + "' already exists");
        // Its tensors, pieces and values go with it (ON DELETE CASCADE); chunk
        // rows stay, so the new checkpoint may reference them.
        db_.prepare("DELETE FROM checkpoints WHERE name = ?1").bind(1, c.name).run();
      }
    }
    if (!c.packs_dir.empty())
      for (const auto& p : c.packs)
        if (!io::exists(c.packs_dir + "/" + p.name))
          throw CatalogError("pack '" + p.name + "' written by this save is gone from '" + c.packs_dir +
                             "' (removed by gc after its grace period?)");
    const std::string now = now_iso8601();
    Statement ins_pack = db_.prepare(
        "INSERT INTO packs (name, size_bytes, created_at) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING pack_id");
    Statement ins_chunk = db_.prepare(
        "INSERT OR IGNORE INTO chunks (chunk_id, pack_id, offset, stored_len, raw_len, codec, elem_size, "
        "stored_sum, block_sums) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    for (const auto& p : c.packs) {
      ins_pack.bind(1, p.name).bind(2, static_cast<int64_t>(p.size)).bind(3, now);
      ins_pack.step();
      int64_t pack_id = ins_pack.column_int(0);
      ins_pack.reset();
      for (const auto& e : p.chunks) {
        std::string id = chunk_blob(e.id), sums = sums_blob(e.block_sums);
        ins_chunk.bind_blob(1, id.data(), id.size())
            .bind(2, pack_id)
            .bind(3, static_cast<int64_t>(e.offset))
            .bind(4, static_cast<int64_t>(e.stored_len))
            .bind(5, static_cast<int64_t>(e.raw_len))
            .bind(6, static_cast<int64_t>(e.codec))
            .bind(7, static_cast<int64_t>(e.elem_size))
            .bind(8, std::bit_cast<int64_t>(e.stored_sum))
            .bind_blob(9, sums.data(), sums.size());
        ins_chunk.run();
      }
    }
    Statement ins_ckpt = db_.prepare(
        "INSERT INTO checkpoints (name, created_at, world_size, metadata, save_token) VALUES (?1, ?2, ?3, ?4, ?5)");
    ins_ckpt.bind(1, c.name).bind(2, now).bind(3, c.world_size).bind(4, c.metadata).bind(5, c.save_token);
    ins_ckpt.run();
    const int64_t ckpt_id = db_.last_insert_rowid();

    Statement ins_tensor = db_.prepare(
        "INSERT INTO tensors (checkpoint_id, name, dtype, elem_size, shape) VALUES (?1, ?2, ?3, ?4, ?5)");
    Statement ins_piece = db_.prepare(
        "INSERT INTO tensor_chunks (tensor_id, offsets, sizes, chunk_id) VALUES (?1, ?2, ?3, ?4)");
    Statement chunk_known = db_.prepare("SELECT 1 FROM chunks WHERE chunk_id = ?1");
    for (const auto& t : c.tensors) {
      ins_tensor.bind(1, ckpt_id).bind(2, t.name).bind(3, t.dtype).bind(4, t.elem_size).bind(5, shape_to_json(t.shape));
      ins_tensor.run();
      const int64_t tensor_id = db_.last_insert_rowid();
      for (const auto& p : t.pieces) {
        std::string id = chunk_blob(p.chunk);
        chunk_known.bind_blob(1, id.data(), id.size());
        bool known = chunk_known.step();
        chunk_known.reset();
        if (!known)
          throw CatalogError("tensor '" + t.name + "': chunk " + p.chunk.hex() +
                             " is neither in this save's packs nor committed in the store");
        ins_piece.bind(1, tensor_id)
            .bind(2, shape_to_json(p.box.offsets))
            .bind(3, shape_to_json(p.box.sizes))
            .bind_blob(4, id.data(), id.size());
        ins_piece.run();
      }
    }
    Statement ins_value = db_.prepare("INSERT INTO entries (checkpoint_id, name, kind, value) VALUES (?1, ?2, ?3, ?4)");
    for (const auto& v : c.values) {
      ins_value.bind(1, ckpt_id).bind(2, v.name).bind(3, std::string_view(value_kind(v.value)));
      std::visit(
          [&](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, Bytes>) ins_value.bind_blob(4, x.data.data(), x.data.size());
            else if constexpr (std::is_same_v<T, std::string>) ins_value.bind(4, std::string_view(x));
            else ins_value.bind(4, x);
          },
          v.value);
      ins_value.run();
    }
    if (before_commit) before_commit();
    db_.exec("COMMIT");
    return ckpt_id;
  } catch (...) {
    try {
      db_.exec("ROLLBACK");
    } catch (...) {
    }
    throw;
  }
}

}  // namespace tessera::catalog
