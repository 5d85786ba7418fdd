-- 0004_drop_pieces: the 0001 per-checkpoint tensor rows, converted into
-- layouts by the 0003 step, go; tensor_versions takes the name tensors.
DROP TABLE tensor_chunks;
DROP TABLE tensors;
ALTER TABLE tensor_versions RENAME TO tensors;
