"""Writes tests/data/store-v1: a store as tessera 0.2.0 (catalog schema 1) left it.

The fixture the migration test (tests/catalog_test.cc, "a schema-1 store
migrates") opens. It was generated once, with the package built from commit
98da627 plus migration 0002 (which only adds checkpoints.save_token; this
script drops that column again and sets user_version 1, which gives exactly
what 0.2.0 writes):

    PYTHONPATH=<old build>/python python tests/data/make_store_v1.py tests/data/store-v1

Contents: checkpoints "a", "b" (w1 changed, the rest shared with "a") and
"d" (w2 changed again); "c" was saved and removed, so gc has orphan chunks.
Every tensor's values follow from its name (see expected() in the test).
"""
import shutil
import sqlite3
import sys

import torch
import tessera

out = sys.argv[1]
shutil.rmtree(out, ignore_errors=True)


def state(step):
    return {
        "w1": torch.arange(64 * 48, dtype=torch.float32).reshape(64, 48) + step,
        "w2": torch.arange(30, dtype=torch.int64) * (2 if step >= 3 else 1),
        "b": torch.full((7,), 0.5, dtype=torch.float32),
        "step": step,
    }


tessera.save(state(0), out, "a", chunk_bytes=4096, compression="none")
s1 = state(1)
s1["w2"] = state(0)["w2"]
tessera.save(s1, out, "b", chunk_bytes=4096, compression="none")
tessera.save(state(2), out, "c", chunk_bytes=4096, compression="auto")
tessera.save({**state(1), "w2": state(3)["w2"], "step": 3}, out, "d", chunk_bytes=4096, compression="auto")
db = sqlite3.connect(out + "/catalog.db")
db.execute("PRAGMA foreign_keys = ON")  # as `tessera rm c` does in schema 1: the rows cascade
db.execute("DELETE FROM checkpoints WHERE name = 'c'")
db.execute("ALTER TABLE checkpoints DROP COLUMN save_token")
db.execute("PRAGMA user_version = 1")
db.commit()
db.execute("VACUUM")
db.close()
shutil.rmtree(out + "/tmp", ignore_errors=True)
