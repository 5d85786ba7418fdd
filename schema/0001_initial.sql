-- 0001_initial: the first tessera catalog schema. See CATALOG.md.
-- Never edit a released migration; add the next numbered file instead.

CREATE TABLE packs (
  pack_id     INTEGER PRIMARY KEY,
  name        TEXT    NOT NULL UNIQUE,     -- file under packs/: <xxh3-128 of the file, hex>.pack
  size_bytes  INTEGER NOT NULL,
  created_at  TEXT    NOT NULL             -- ISO 8601, UTC
) STRICT;

CREATE TABLE chunks (
  chunk_id    BLOB    PRIMARY KEY,         -- 16 bytes: XXH3-128 of the raw bytes
  pack_id     INTEGER NOT NULL REFERENCES packs(pack_id),
  offset      INTEGER NOT NULL,            -- of the stored bytes in the pack
  stored_len  INTEGER NOT NULL,
  raw_len     INTEGER NOT NULL,
  codec       INTEGER NOT NULL,            -- 0 raw, 1 lz4, 2 shuffle+lz4, 3 shuffle+huffman
  elem_size   INTEGER NOT NULL,            -- shuffle width
  stored_sum  INTEGER NOT NULL,            -- XXH3-64 of the stored bytes (raw chunks: of block_sums), signed
  block_sums  BLOB    NOT NULL             -- raw chunks: u64 LE XXH3-64 per 64 KiB block; else empty
) STRICT, WITHOUT ROWID;
CREATE INDEX chunks_by_pack ON chunks(pack_id);

CREATE TABLE checkpoints (
  checkpoint_id INTEGER PRIMARY KEY,
  name        TEXT    NOT NULL UNIQUE,
  created_at  TEXT    NOT NULL,            -- ISO 8601, UTC
  world_size  INTEGER NOT NULL,
  metadata    TEXT    NOT NULL DEFAULT '{}'  -- JSON object
) STRICT;

CREATE TABLE tensors (
  tensor_id     INTEGER PRIMARY KEY,
  checkpoint_id INTEGER NOT NULL REFERENCES checkpoints(checkpoint_id) ON DELETE CASCADE,
  name          TEXT    NOT NULL,
  dtype         TEXT    NOT NULL,          -- LibTorch's name: float32, bfloat16, int64, ...
  elem_size     INTEGER NOT NULL,
  shape         TEXT    NOT NULL,          -- global shape, JSON array
  UNIQUE (checkpoint_id, name)
) STRICT;

-- The boxes that tile each tensor, and the chunk holding each box.
CREATE TABLE tensor_chunks (
  tensor_id   INTEGER NOT NULL REFERENCES tensors(tensor_id) ON DELETE CASCADE,
  offsets     TEXT    NOT NULL,            -- JSON array, global coordinates
  sizes       TEXT    NOT NULL,            -- JSON array
  chunk_id    BLOB    NOT NULL REFERENCES chunks(chunk_id)
) STRICT;
CREATE INDEX tensor_chunks_by_tensor ON tensor_chunks(tensor_id);
CREATE INDEX tensor_chunks_by_chunk ON tensor_chunks(chunk_id);

-- Non-tensor entries: small values stored inline.
CREATE TABLE entries (
  checkpoint_id INTEGER NOT NULL REFERENCES checkpoints(checkpoint_id) ON DELETE CASCADE,
  name          TEXT    NOT NULL,
  kind          TEXT    NOT NULL CHECK (kind IN ('bytes', 'int', 'float', 'string')),
  value         ANY,
  PRIMARY KEY (checkpoint_id, name)
) STRICT;
