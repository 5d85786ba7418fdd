-- 0005_live_from_layouts: gc finds the live chunks by decoding layouts.pieces,
-- so a commit writes no row per chunk reference (layout_chunks) and no index
-- entry per chunk (chunks_by_pack). See CATALOG.md ("Garbage collection").
DROP TABLE layout_chunks;

-- chunks again, without the foreign key on pack_id: checking it when a packs
-- row is deleted would need an index on chunks(pack_id). gc deletes a packs
-- row only once it has checked, in its transaction, that no chunk row names
-- it. Dropping the old table drops chunks_by_pack with it.
CREATE TABLE chunks_v5 (
  chunk_id    BLOB    PRIMARY KEY,         -- 16 bytes: XXH3-128 of the raw bytes
  pack_id     INTEGER NOT NULL,            -- packs.pack_id (not a declared foreign key)
  offset      INTEGER NOT NULL,            -- of the stored bytes in the pack
  stored_len  INTEGER NOT NULL,
  raw_len     INTEGER NOT NULL,
  codec       INTEGER NOT NULL,            -- 0 raw, 1 lz4, 2 shuffle+lz4, 3 shuffle+huffman
  elem_size   INTEGER NOT NULL,            -- shuffle width
  stored_sum  INTEGER NOT NULL,            -- XXH3-64 of the stored bytes (raw chunks: of block_sums), signed
  block_sums  BLOB    NOT NULL             -- raw chunks: u64 LE XXH3-64 per 64 KiB block; else empty
) STRICT, WITHOUT ROWID;
INSERT INTO chunks_v5 SELECT chunk_id, pack_id, offset, stored_len, raw_len, codec, elem_size, stored_sum, block_sums
  FROM chunks ORDER BY chunk_id;
DROP TABLE chunks;
ALTER TABLE chunks_v5 RENAME TO chunks;
