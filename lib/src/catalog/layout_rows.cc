#include "catalog/layout_rows.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "catalog/catalog.h"
#include "catalog/row_sum.h"
#include "tessera/error.h"

namespace tessera::catalog {
int64_t tensor_row_sum(int64_t tensor_id, std::string_view name, std::string_view layout_digest) {
  return RowSum().add(tensor_id).add(name).add(layout_digest).value();
}

FreshChunks::FreshChunks(size_t capacity) {
  size_t n = 16;
  while (n < 2 * capacity) n *= 2;  // at most half full
  slots_.resize(n);
  mask_ = n - 1;
}

void FreshChunks::add(const pack::ChunkId& id, int64_t stored_len) {
  if (2 * (size_ + 1) > slots_.size()) throw CatalogError("catalog: more fresh chunks than reserved");
  size_t i = slot_of(id);
  while (slots_[i].stored_len >= 0) i = (i + 1) & mask_;
  slots_[i] = Slot{id, stored_len};
  ++size_;
  stored_bytes_ += stored_len;
}

std::optional<int64_t> FreshChunks::find(const pack::ChunkId& id) const {
  for (size_t i = slot_of(id);; i = (i + 1) & mask_) {
    if (slots_[i].stored_len < 0) return std::nullopt;
    if (slots_[i].id == id) return slots_[i].stored_len;
  }
}

LayoutWriter::LayoutWriter(Db& db, const FreshChunks* fresh, const std::string& tensors_table)
    : db_(db),
      fresh_(fresh),
      find_layout_(db.prepare("SELECT layout_id, raw_bytes, stored_bytes FROM layouts WHERE digest = ?1")),
      insert_layout_(db.prepare(
          "INSERT INTO layouts (digest, dtype, elem_size, shape, piece_count, raw_bytes, stored_bytes, pieces) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")),
      find_tensor_(db.prepare("SELECT tensor_id FROM " + tensors_table + " WHERE name = ?1 AND layout_id = ?2")),
      // Schema 1's upgrade writes tensor_versions rows before schema 6 adds row_sum (add_row_sums fills it).
      row_sums_(tensors_table == "tensors"),
      insert_tensor_(db.prepare(row_sums_ ? "INSERT INTO tensors (tensor_id, name, layout_id, row_sum) VALUES (?1, ?2, ?3, ?4)"
                                          : "INSERT INTO " + tensors_table + " (tensor_id, name, layout_id) VALUES (?1, ?2, ?3)")),
      stored_len_(db.prepare("SELECT stored_len FROM chunks WHERE chunk_id = ?1")) {
  // Ids are assigned here (as SQLite would: one above the largest) so that the row's checksum can cover its id.
  Statement st = db.prepare("SELECT coalesce(max(tensor_id), 0) FROM " + tensors_table);
  st.step();
  next_tensor_id_ = st.column_int(0) + 1;
}

std::optional<int64_t> LayoutWriter::stored_len(const pack::ChunkId& id) {
  if (fresh_)
    if (auto len = fresh_->find(id)) return len;
  stored_len_.bind_blob_static(1, id.bytes.data(), 16);
  std::optional<int64_t> len;
  if (stored_len_.step()) len = stored_len_.column_int(0);
  stored_len_.reset();
  return len;
}

LayoutWriter::Written LayoutWriter::put(const TensorRecord& given) {
  std::optional<TensorRecord> sorted;
  if (!pieces_sorted(given.pieces)) {
    sorted = given;
    sort_pieces(sorted->pieces);
  }
  const TensorRecord& t = sorted ? *sorted : given;
  const std::string pieces = encode_pieces(t.pieces, t.shape.size());
  const std::string digest = chunk_blob(layout_digest(t.dtype, t.elem_size, t.shape, pieces));
  Written w;
  find_layout_.bind_blob_static(1, digest.data(), digest.size());
  if (find_layout_.step()) {
    w.layout_id = find_layout_.column_int(0);
    w.raw_bytes = find_layout_.column_int(1);
    w.stored_bytes = find_layout_.column_int(2);
  }
  find_layout_.reset();
  if (w.layout_id == 0) {
    w.new_layout = true;
    std::vector<pack::ChunkId> distinct;
    {
      std::unordered_set<pack::ChunkId, pack::ChunkIdHash> seen;
      for (const Piece& p : t.pieces) {
        w.raw_bytes += p.box.volume() * t.elem_size;
        if (seen.insert(p.chunk).second) distinct.push_back(p.chunk);
      }
    }
    for (const pack::ChunkId& id : distinct) {
      const auto len = stored_len(id);
      if (!len)
        throw CatalogError("tensor '" + t.name + "': chunk " + id.hex() +
                           " is neither in this save's packs nor committed in the store");
      w.stored_bytes += *len;
    }
    insert_layout_.bind_blob_static(1, digest.data(), digest.size())
        .bind(2, t.dtype)
        .bind(3, t.elem_size)
        .bind(4, shape_to_json(t.shape))
        .bind(5, static_cast<int64_t>(t.pieces.size()))
        .bind(6, w.raw_bytes)
        .bind(7, w.stored_bytes)
        .bind_blob_static(8, pieces.data(), pieces.size());
    insert_layout_.run();
    w.layout_id = db_.last_insert_rowid();
  }
  // Looked up before inserting: an unchanged tensor writes no page. (A new
  // layout has no tensors row yet.)
  if (!w.new_layout) {
    find_tensor_.bind(1, t.name).bind(2, w.layout_id);
    if (find_tensor_.step()) w.tensor_id = find_tensor_.column_int(0);
    find_tensor_.reset();
  }
  if (w.tensor_id == 0) {
    w.tensor_id = next_tensor_id_++;
    insert_tensor_.bind(1, w.tensor_id).bind(2, t.name).bind(3, w.layout_id);
    if (row_sums_) insert_tensor_.bind(4, tensor_row_sum(w.tensor_id, t.name, digest));
    insert_tensor_.run();
  }
  return w;
}

void TensorList::add(const LayoutWriter::Written& w) {
  ids.push_back(w.tensor_id);
  logical_bytes += w.raw_bytes;
  if (layouts_.insert(w.layout_id).second) stored_bytes += w.stored_bytes;
}

std::vector<TensorRecord> read_tensors(Db& db, const std::vector<int64_t>& ids, bool with_pieces,
                                       const ReadFilter& filter) {
  // Ids held densely (a first checkpoint, or one that changed most of its
  // tensors) are read in one scan of their range, others one lookup each.
  // (Ids are ascending and not negative: decode_ids makes them so.)
  const bool scan = !ids.empty() && ids.size() * 2 > static_cast<uint64_t>(ids.back() - ids.front());
  Statement st = db.prepare(std::string("SELECT t.name, t.layout_id, l.dtype, l.elem_size, l.shape, l.raw_bytes, "
                                        "l.stored_bytes, t.row_sum, l.digest, t.tensor_id") +
                            (with_pieces ? ", l.pieces" : "") + " FROM tensors t JOIN layouts l USING (layout_id)" +
                            (scan ? " WHERE t.tensor_id BETWEEN ?1 AND ?2 ORDER BY t.tensor_id" : " WHERE t.tensor_id = ?1"));
  std::vector<TensorRecord> out;
  out.reserve(ids.size());
  std::string what;  // reused: no allocation per tensor
  auto read_row = [&](int64_t id) {
    TensorRecord t;
    t.id = id;
    t.name = st.column_text_view(0);
    t.layout_id = st.column_int(1);
    t.dtype = st.column_text_view(2);
    t.elem_size = st.column_int(3);
    t.shape = shape_from_json(st.column_text_view(4));
    t.raw_bytes = st.column_int(5);
    t.stored_bytes = st.column_int(6);
    // The row names this layout (its digest is in the row's checksum), and
    // the layout's contents hash to its digest: no damaged row passes.
    const std::string_view digest = st.column_blob_view(8);
    if (tensor_row_sum(id, t.name, digest) != st.column_int(7))
      throw CorruptionError("catalog damaged: the row of tensor '" + t.name + "' (id " + std::to_string(id) +
                            ") fails its checksum (run tessera verify)");
    if (with_pieces) {
      const std::string_view blob = st.column_blob_view(10);
      const pack::ChunkId computed = layout_digest(t.dtype, t.elem_size, t.shape, blob);
      if (std::string_view(reinterpret_cast<const char*>(computed.bytes.data()), 16) != digest)
        throw CorruptionError("catalog damaged: the layout of tensor '" + t.name + "' does not match its digest " +
                              "(run tessera verify)");
      std::optional<Box> within;
      if (filter) within = filter(t.name);
      if (!filter || within) {
        what.assign("layout of tensor '").append(t.name).append("'");
        t.pieces = decode_pieces(blob, t.shape.size(), what, within ? &*within : nullptr);
      }
    }
    out.push_back(std::move(t));
  };
  auto missing = [](int64_t id) {
    return CatalogError("catalog: a checkpoint lists tensor row " + std::to_string(id) + ", which is missing");
  };
  if (scan) {
    st.bind(1, ids.front()).bind(2, ids.back());
    size_t next = 0;  // ids[next]: the next one to find
    while (next < ids.size() && st.step()) {
      const int64_t id = st.column_int(9);
      if (id < ids[next]) continue;  // another checkpoint's tensor
      if (id > ids[next]) throw missing(ids[next]);
      read_row(id);
      ++next;
    }
    if (next < ids.size()) throw missing(ids[next]);
  } else {
    for (int64_t id : ids) {
      st.bind(1, id);
      if (!st.step()) throw missing(id);
      read_row(id);
      st.reset();
    }
  }
  std::sort(out.begin(), out.end(), [](const TensorRecord& a, const TensorRecord& b) { return a.name < b.name; });
  return out;
}

std::vector<int64_t> tensor_ids_of(int64_t checkpoint_id, std::string_view tensor_ids) {
  return decode_ids(tensor_ids, "tensor list of checkpoint " + std::to_string(checkpoint_id));
}

std::vector<int64_t> checkpoint_tensor_ids(Db& db, int64_t checkpoint_id) {
  Statement st = db.prepare("SELECT tensor_ids FROM checkpoints WHERE checkpoint_id = ?1");
  st.bind(1, checkpoint_id);
  if (!st.step()) return {};
  return tensor_ids_of(checkpoint_id, st.column_blob_view(0));
}

void prune_unreferenced(Db& db) {
  std::unordered_set<int64_t> held;
  {
    Statement st = db.prepare("SELECT checkpoint_id, tensor_ids FROM checkpoints");
    while (st.step())
      for (int64_t id : tensor_ids_of(st.column_int(0), st.column_blob_view(1)))
        held.insert(id);
  }
  std::vector<int64_t> dead;
  std::unordered_set<int64_t> layouts;  // that may have lost their last user
  {
    Statement st = db.prepare("SELECT tensor_id, layout_id FROM tensors");
    while (st.step())
      if (!held.count(st.column_int(0))) {
        dead.push_back(st.column_int(0));
        layouts.insert(st.column_int(1));
      }
  }
  Statement del_tensor = db.prepare("DELETE FROM tensors WHERE tensor_id = ?1");
  for (int64_t id : dead) del_tensor.bind(1, id).run();
  Statement used = db.prepare("SELECT 1 FROM tensors WHERE layout_id = ?1 LIMIT 1");
  Statement del_layout = db.prepare("DELETE FROM layouts WHERE layout_id = ?1");
  for (int64_t layout : layouts) {
    used.bind(1, layout);
    const bool in_use = used.step();
    used.reset();
    if (!in_use) del_layout.bind(1, layout).run();
  }
}

}  // namespace tessera::catalog
