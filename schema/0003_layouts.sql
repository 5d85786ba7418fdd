-- 0003_layouts: content-addressed tensor layouts, so that a checkpoint adds
-- catalog rows only for what changed. See CATALOG.md ("Layouts").
-- After this file, the code converts the 0001 tables (upgrade.cc); 0004 drops them.

CREATE TABLE layouts (
  layout_id    INTEGER PRIMARY KEY,
  digest       BLOB    NOT NULL UNIQUE,   -- 16 bytes: XXH3-128 of dtype, elem_size, shape, pieces
  dtype        TEXT    NOT NULL,
  elem_size    INTEGER NOT NULL,
  shape        TEXT    NOT NULL,          -- global shape, JSON array
  piece_count  INTEGER NOT NULL,
  raw_bytes    INTEGER NOT NULL,          -- sum of the pieces' raw bytes
  stored_bytes INTEGER NOT NULL,          -- stored bytes of its distinct chunks
  pieces       BLOB    NOT NULL           -- the boxes and their chunks (CATALOG.md)
) STRICT;

-- Which chunks each layout references: one row per distinct (chunk, layout).
-- layout_id is not a declared foreign key (that would need a second index);
-- the code deletes a layout's rows with the layout.
CREATE TABLE layout_chunks (
  chunk_id  BLOB    NOT NULL REFERENCES chunks(chunk_id),
  layout_id INTEGER NOT NULL,
  PRIMARY KEY (chunk_id, layout_id)
) STRICT, WITHOUT ROWID;

-- A tensor as some checkpoints hold it: a name and a layout.
CREATE TABLE tensor_versions (
  tensor_id INTEGER PRIMARY KEY,
  name      TEXT    NOT NULL,
  layout_id INTEGER NOT NULL REFERENCES layouts(layout_id),
  UNIQUE (name, layout_id)
) STRICT;
CREATE INDEX tensor_versions_by_layout ON tensor_versions(layout_id);

-- Set at commit, so that listing never walks references.
ALTER TABLE checkpoints ADD COLUMN tensor_ids    BLOB    NOT NULL DEFAULT x'00';
ALTER TABLE checkpoints ADD COLUMN tensor_count  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE checkpoints ADD COLUMN value_count   INTEGER NOT NULL DEFAULT 0;
ALTER TABLE checkpoints ADD COLUMN logical_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE checkpoints ADD COLUMN stored_bytes  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE checkpoints ADD COLUMN added_bytes   INTEGER NOT NULL DEFAULT 0;
