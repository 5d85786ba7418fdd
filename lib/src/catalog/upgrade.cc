#include "catalog/upgrade.h"

#include <unordered_map>
#include <unordered_set>

#include "catalog/catalog.h"
#include "catalog/layout_rows.h"

namespace tessera::catalog {

void convert_to_layouts(Db& db) {
  LayoutWriter writer(db, nullptr, "tensor_versions");
  Statement stored_len = db.prepare("SELECT stored_len FROM chunks WHERE chunk_id = ?1");
  std::vector<int64_t> checkpoints;
  {
    Statement st = db.prepare("SELECT checkpoint_id FROM checkpoints ORDER BY checkpoint_id");
    while (st.step()) checkpoints.push_back(st.column_int(0));
  }
  Statement read_tensors = db.prepare("SELECT tensor_id, name, dtype, elem_size, shape FROM tensors WHERE checkpoint_id = ?1");
  Statement read_pieces = db.prepare(
      "SELECT tc.tensor_id, tc.offsets, tc.sizes, tc.chunk_id FROM tensor_chunks tc JOIN tensors t USING (tensor_id) "
      "WHERE t.checkpoint_id = ?1");
  Statement count_values = db.prepare("SELECT count(*) FROM entries WHERE checkpoint_id = ?1");
  Statement update = db.prepare(
      "UPDATE checkpoints SET tensor_ids = ?1, tensor_count = ?2, value_count = ?3, logical_bytes = ?4, "
      "stored_bytes = ?5, added_bytes = ?6 WHERE checkpoint_id = ?7");
  std::unordered_set<pack::ChunkId, pack::ChunkIdHash> referenced_before;  // by a checkpoint with a smaller id
  for (int64_t ckpt : checkpoints) {
    std::vector<TensorRecord> tensors;
    std::unordered_map<int64_t, size_t> index;
    read_tensors.bind(1, ckpt);
    while (read_tensors.step()) {
      TensorRecord t;
      index[read_tensors.column_int(0)] = tensors.size();
      t.name = read_tensors.column_text(1);
      t.dtype = read_tensors.column_text(2);
      t.elem_size = read_tensors.column_int(3);
      t.shape = shape_from_json(read_tensors.column_text(4));
      tensors.push_back(std::move(t));
    }
    read_tensors.reset();
    int64_t added_bytes = 0;
    read_pieces.bind(1, ckpt);
    while (read_pieces.step()) {
      Piece p{Box{shape_from_json(read_pieces.column_text(1)), shape_from_json(read_pieces.column_text(2))},
              chunk_from_blob(read_pieces.column_blob(3))};
      if (referenced_before.insert(p.chunk).second) {
        stored_len.bind_blob_static(1, p.chunk.bytes.data(), 16);
        if (stored_len.step()) added_bytes += stored_len.column_int(0);
        stored_len.reset();
      }
      tensors[index.at(read_pieces.column_int(0))].pieces.push_back(std::move(p));
    }
    read_pieces.reset();
    TensorList list;
    for (const TensorRecord& t : tensors) list.add(writer.put(t));
    count_values.bind(1, ckpt);
    count_values.step();
    const int64_t values = count_values.column_int(0);
    count_values.reset();
    const std::string blob = encode_ids(list.ids);
    update.bind_blob(1, blob.data(), blob.size())
        .bind(2, static_cast<int64_t>(list.ids.size()))
        .bind(3, values)
        .bind(4, list.logical_bytes)
        .bind(5, list.stored_bytes)
        .bind(6, added_bytes)
        .bind(7, ckpt);
    update.run();
  }
}

void add_row_sums(Db& db) {
  {
    Statement read = db.prepare(
        "SELECT checkpoint_id, name, created_at, world_size, metadata, save_token, tensor_count, value_count, "
        "logical_bytes, stored_bytes, added_bytes, tensor_ids FROM checkpoints");
    Statement update = db.prepare("UPDATE checkpoints SET row_sum = ?1 WHERE checkpoint_id = ?2");
    while (read.step()) {
      const CheckpointInfo c{read.column_int(0), read.column_text(1), read.column_text(2), read.column_int(3),
                             read.column_text(4), read.column_int(6), read.column_int(7), read.column_int(8),
                             read.column_int(9), read.column_int(10), read.column_text(5)};
      update.bind(1, checkpoint_row_sum(c, read.column_blob(11))).bind(2, c.id).run();
    }
  }
  {
    Statement read = db.prepare("SELECT t.tensor_id, t.name, l.digest FROM tensors t JOIN layouts l USING (layout_id)");
    Statement update = db.prepare("UPDATE tensors SET row_sum = ?1 WHERE tensor_id = ?2");
    while (read.step())
      update.bind(1, tensor_row_sum(read.column_int(0), read.column_text(1), read.column_blob(2)))
          .bind(2, read.column_int(0))
          .run();
  }
  {
    Statement read = db.prepare("SELECT rowid, checkpoint_id, name, kind, value FROM entries");
    Statement update = db.prepare("UPDATE entries SET row_sum = ?1 WHERE rowid = ?2");
    while (read.step()) {
      const ValueRecord v{read.column_text(2), value_of_column(read, 4, read.column_text(3))};
      update.bind(1, value_row_sum(read.column_int(1), v)).bind(2, read.column_int(0)).run();
    }
  }
}

}  // namespace tessera::catalog
