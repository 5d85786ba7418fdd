"""tessera.dcp: torch.distributed.checkpoint through a tessera store, and
interop with DCP's own FileSystemWriter/Reader (import-dcp)."""
import os
import re
import subprocess
import sys

import pytest
import states
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException

import tessera
from tessera.dcp import StorageReader, StorageWriter


def _dcp_save(rank, world, store, name, dim, salt=0, chunk_bytes=4096):
    sd = states.state(states.mesh1d(), dim, salt)
    w = StorageWriter(store, name, chunk_bytes=chunk_bytes)
    dcp.save(sd, storage_writer=w)
    if rank == 0:
        assert w.commit_stats.chunks > 0, w.commit_stats


def _dcp_load(rank, world, store, name, dim, salt=0):
    sd = states.state(states.mesh1d(), dim, zeros=True)
    dcp.load(sd, storage_reader=StorageReader(store, name))
    states.check_state(sd, salt)


def _dcp_load_plain(store, name, salt=0):
    sd = {"model": {k.removeprefix("model."): torch.zeros(s, dtype=d) for k, (s, d) in states.TENSORS.items()},
          "optim": {"step": 0, "lr": 0.0, "name": "", "betas": None}}
    dcp.load(sd, storage_reader=StorageReader(store, name), no_dist=True)
    states.check_state(sd, salt)


def test_dcp_save_2_ranks_load_3_ranks_other_layout(store, ranks):
    ranks(_dcp_save, 2, store, "rows", 0)
    ranks(_dcp_load, 3, store, "rows", 1)  # columns, uneven
    _dcp_load_plain(store, "rows")
    info = tessera.Store(store).checkpoint("rows")
    meta = info.metadata
    assert '"format": "dcp"' in meta and "dcp_metadata" in meta
    assert info.world_size == 2, info  # the ranks of the save, passed to commit_parts
    # DCP's byte items holding a plain int, float or str are stored as values of that kind (show and diff print
    # them); the tuple stays torch.save bytes, the only one listed as such.
    import json
    kinds = {e.name: e.kind for e in tessera._core.describe(tessera.Store(store), "rows")}
    assert (kinds["optim.step"], kinds["optim.lr"], kinds["optim.name"], kinds["optim.betas"]) == \
        ("int", "float", "string", "bytes"), kinds
    assert json.loads(meta)["python"]["torch_saved"] == ["optim.betas"], meta[:200]
    shown = subprocess.run([os.environ.get("TESSERA_CLI", "tessera"), "show", store, "rows"], capture_output=True,
                           text=True)
    if shown.returncode == 0:  # the C++ CLI, where this build has one
        values = {ln.split()[0]: ln.split()[-1] for ln in shown.stdout.splitlines() if ln.startswith("optim.")}
        assert (values["optim.step"], values["optim.lr"], values["optim.name"]) == ("3", "0.01", "adamw"), values


def _async_save(rank, world, store):
    from torch.distributed.checkpoint.state_dict_saver import AsyncCheckpointerType
    for kind in (AsyncCheckpointerType.THREAD, AsyncCheckpointerType.PROCESS):  # DCP's two executors
        name = f"async-{kind.value}"
        sd = states.state(states.mesh1d(), 0, salt=5)
        fut = dcp.async_save(sd, storage_writer=StorageWriter(store, name), async_checkpointer_type=kind)
        fut.result()
        sd = states.state(states.mesh1d(), 1, zeros=True)
        dcp.load(sd, storage_reader=StorageReader(store, name))
        states.check_state(sd, salt=5)


def test_dcp_async_save(store, ranks):
    ranks(_async_save, 2, store)


def _dedup(rank, world, store):
    sd = states.state(states.mesh1d(), 0)
    first, second = StorageWriter(store, "a", chunk_bytes=1024), StorageWriter(store, "b", chunk_bytes=1024)
    dcp.save(sd, storage_writer=first)
    dcp.save(sd, storage_writer=second)
    assert first.last_stats.chunks_written > 0, first.last_stats
    assert second.last_stats.written_bytes == 0 and second.last_stats.chunks_written == 0, second.last_stats
    if rank == 0:
        assert second.commit_stats.written_bytes == 0 and second.commit_stats.chunks > 0
        assert tessera.Store(store).checkpoint("b").added_bytes == 0
    dcp.save(sd, checkpoint_id="by-id", storage_writer=StorageWriter(store, "unused"))  # checkpoint_id names it
    assert "by-id" in {c.name for c in tessera.Store(store, read_only=True).checkpoints()}


def _progress(rank, world, store):
    sd = states.state(states.mesh1d(), 0)
    saved, loaded = [], []
    dcp.save(sd, storage_writer=StorageWriter(store, "p", chunk_bytes=1024, progress=saved.append))
    dcp.load(sd, storage_reader=StorageReader(store, "p", progress=loaded.append))
    for op, seen in (("save", saved), ("load", loaded)):
        assert seen and {p.operation for p in seen} == {op}, seen
        assert seen[-1].finished and seen[-1].done_bytes == seen[-1].total_bytes > 0, seen


def test_dcp_storage_classes_report_progress(store, ranks):
    ranks(_progress, 2, store)


def test_dcp_dedup_second_save_writes_no_chunk(store, ranks):
    ranks(_dedup, 2, store)


def _bytes_read(rank, world, store, dim, verify):
    from torch.distributed.tensor import Shard, distribute_tensor
    mesh = states.mesh1d()
    sd = {"w": distribute_tensor(torch.zeros(1024, 256), mesh, [Shard(dim)])}
    r = StorageReader(store, "big", verify=verify)
    dcp.load(sd, storage_reader=r)
    assert torch.equal(sd["w"].full_tensor(), states.full("w", (1024, 256), torch.float32))
    assert r.bytes_read == 1024 * 256 * 4 // world, (dim, verify, r.bytes_read)  # exactly this rank's box


def _save_big(rank, world, store):
    from torch.distributed.tensor import Shard, distribute_tensor
    sd = {"w": distribute_tensor(states.full("w", (1024, 256), torch.float32), states.mesh1d(), [Shard(0)])}
    dcp.save(sd, storage_writer=StorageWriter(store, "big", chunk_bytes=64 << 10, compression="none"))


def test_dcp_reads_only_the_boxes_it_needs(store, ranks):
    ranks(_save_big, 2, store)
    ranks(_bytes_read, 4, store, 0, True)   # row shards on the chunk grid: whole 64 KiB blocks
    ranks(_bytes_read, 4, store, 1, False)  # column shards: only their byte ranges of each row


class _FailingWriter(StorageWriter):
    def write_data(self, plan, planner):
        if self.rank == 1:
            raise RuntimeError("disk on fire")
        return super().write_data(plan, planner)


def _failures(rank, world, store):
    sd = states.state(states.mesh1d(), 0)
    dcp.save(sd, storage_writer=StorageWriter(store, "ok"))
    # An existing name with overwrite=False: refused on every rank, nothing changed.
    with pytest.raises(CheckpointException, match=re.escape("already exists")):
        dcp.save(sd, storage_writer=StorageWriter(store, "ok", overwrite=False))
    # A rank raising while writing: every rank raises, no checkpoint appears.
    with pytest.raises(CheckpointException, match=re.escape("disk on fire")):
        dcp.save(sd, storage_writer=_FailingWriter(store, "half"))
    assert [c.name for c in tessera.Store(store, read_only=True).checkpoints()] == ["ok"]
    # Unknown checkpoint; a key the checkpoint lacks; a wrong global shape.
    with pytest.raises(CheckpointException, match=re.escape("'nope'")):
        dcp.load(sd, storage_reader=StorageReader(store, "nope"))
    extra = dict(sd, more=torch.zeros(3))
    with pytest.raises(CheckpointException, match=re.escape("more")):
        dcp.load(extra, storage_reader=StorageReader(store, "ok"))
    wrong = {"model": {"counts": torch.zeros(8, 3, dtype=torch.int64)}}
    with pytest.raises(CheckpointException, match=re.escape("model.counts")):
        dcp.load(wrong, storage_reader=StorageReader(store, "ok"))


def test_dcp_failures(store, ranks):
    ranks(_failures, 2, store)


class _App:
    """A Stateful over a state dict, as DCP users wrap model and optimizer."""

    def __init__(self, sd):
        self.sd = sd

    def state_dict(self):
        return self.sd

    def load_state_dict(self, sd):
        self.sd = sd


def _overwrite(rank, world, store):
    from torch.distributed.checkpoint.stateful import Stateful
    Stateful.register(_App)
    for salt in (1, 2, 3):  # DCP's habit: saving in a loop into one checkpoint id
        dcp.save(states.state(states.mesh1d(), 0, salt=salt), storage_writer=StorageWriter(store, "ckpt"))
    assert [c.name for c in tessera.Store(store, read_only=True).checkpoints()] == ["ckpt"]
    got = states.state(states.mesh1d(), 1, zeros=True)
    dcp.load(got, storage_reader=StorageReader(store, "ckpt"))
    states.check_state(got, salt=3)

    # An overwrite that fails on one rank leaves the old checkpoint as it was.
    with pytest.raises(CheckpointException, match=re.escape("disk on fire")):
        dcp.save(states.state(states.mesh1d(), 0, salt=4), storage_writer=_FailingWriter(store, "ckpt"))
    got = states.state(states.mesh1d(), 1, zeros=True)
    dcp.load(got, storage_reader=StorageReader(store, "ckpt"))
    states.check_state(got, salt=3)

    # tessera.save keeps names immutable unless asked.
    with pytest.raises(tessera.AlreadyExistsError, match=re.escape("already exists")):
        tessera.save(states.state(states.mesh1d(), 0, salt=5), store, "ckpt")
    tessera.save(states.state(states.mesh1d(), 0, salt=5), store, "ckpt", overwrite=True)
    got = states.state(states.mesh1d(), 1, zeros=True)
    tessera.load(got, store, "ckpt")
    states.check_state(got, salt=5)

    # Stateful and non-stateful loads of the same checkpoint, both ways.
    dcp.save({"app": _App(states.state(states.mesh1d(), 0, salt=6))}, storage_writer=StorageWriter(store, "app"))
    plain = {"app": states.state(states.mesh1d(), 1, zeros=True)}
    dcp.load(plain, storage_reader=StorageReader(store, "app"))
    states.check_state(plain["app"], salt=6)
    app = _App(states.state(states.mesh1d(), None, zeros=True))  # replicated DTensors this time
    dcp.load({"app": app}, storage_reader=StorageReader(store, "app"))
    states.check_state(app.sd, salt=6)

    # storage_meta: the checkpoint id and the coordinator's save_id are stored; the reader adds its load_id.
    w = StorageWriter(store, "meta")
    dcp.save(states.state(states.mesh1d(), 0), storage_writer=w)
    r = StorageReader(store, "meta")
    meta = r.read_metadata().storage_meta
    assert meta.checkpoint_id == "meta" and meta.load_id == r.load_id, meta
    ids = [None] * world
    torch.distributed.all_gather_object(ids, w.save_id)
    assert meta.save_id == ids[0], (meta, ids)
    r.reset("ckpt")
    assert r.read_metadata().storage_meta.load_id == r.load_id != meta.load_id


def test_dcp_overwrite_stateful_loads_and_storage_meta(store, ranks):
    ranks(_overwrite, 2, store)


def _sharded_to_plain(rank, world, store):
    from torch.distributed.tensor import Shard, distribute_tensor
    full = states.full("p", (64, 48), torch.float32)
    dcp.save({"p": distribute_tensor(full, states.mesh1d(), [Shard(0)])}, storage_writer=StorageWriter(store, "s"))
    plain = {"p": torch.zeros(64, 48)}  # every rank the whole tensor
    dcp.load(plain, storage_reader=StorageReader(store, "s"))
    assert torch.equal(plain["p"], full)
    dcp.save({"p": full.clone()}, storage_writer=StorageWriter(store, "plain"))  # a plain tensor on every rank
    cols = {"p": distribute_tensor(torch.zeros(64, 48), states.mesh1d(), [Shard(1)])}
    dcp.load(cols, storage_reader=StorageReader(store, "plain"))
    assert torch.equal(cols["p"].full_tensor(), full)


def test_dcp_resharding_between_sharded_and_plain_tensors(store, ranks):
    ranks(_sharded_to_plain, 3, store)


class _Evil:
    """Unpickling this creates a file: proof that code from the store ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_reading_a_store_runs_no_code_from_it(tmp_path):
    import base64
    import json
    import pickle

    from tessera import _core
    from tessera._entries import encode_object, tensor_entry, value_entry
    d = str(tmp_path)
    store, marker = os.path.join(d, "store"), os.path.join(d, "code-ran")
    # A hostile checkpoint: DCP metadata as a pickle (as tessera wrote it before) and a torch.save'd value
    # whose unpickling runs code, both listed where the package looks for them.
    meta = {"python": {"format": "dcp", "torch_saved": ["obj"],
                       "dcp_metadata": base64.b64encode(pickle.dumps(_Evil(marker))).decode()}}
    w = torch.arange(6.0).reshape(2, 3)
    _core.save(tessera.Store(store, create=True), "c", [tensor_entry("w", w), value_entry("obj", encode_object(_Evil(marker)))],
               metadata=json.dumps(meta))
    md = StorageReader(store, "c").read_metadata()  # the pickle is ignored: the catalog describes the entries
    assert set(md.state_dict_metadata) == {"w", "obj"}
    sd = {"w": torch.zeros(2, 3)}
    dcp.load(sd, storage_reader=StorageReader(store, "c"), no_dist=True)  # tensors only
    assert torch.equal(sd["w"], w)
    with_obj = {"w": torch.zeros(2, 3), "obj": None}
    with pytest.raises(BaseException) as raised:
        dcp.load(with_obj, storage_reader=StorageReader(store, "c"), no_dist=True)
    e = raised.value
    assert "'obj'" in str(e) and "trust_objects" in str(e), str(e)
    with pytest.raises(tessera.InvalidArgument, match=re.escape("'obj'")):
        tessera.load(dict(with_obj), store, "c")
    assert not os.path.exists(marker), "loading ran code from the store"
    # Plain objects still come back without trust; with trust_objects=True the payload runs (it is real).
    tessera.save({"betas": (0.9, 0.95), "flag": True, "none": None}, store, "plain")
    got = {"betas": None, "flag": None, "none": 1}
    tessera.load(got, store, "plain")
    assert got == {"betas": (0.9, 0.95), "flag": True, "none": None}, got
    tessera.load(dict(with_obj), store, "c", trust_objects=True)
    assert os.path.exists(marker)


def test_damaged_or_newer_dcp_metadata_is_refused_naming_it(store):
    import json

    from tessera import _core
    from tessera._entries import tensor_entry
    w = torch.arange(6.0).reshape(2, 3)
    for name, dcp_md in (("bad", {"tensors": {"w": {"dtype": "float32", "shape": "2x3"}}}),
                         ("newer", {"format_version": 99, "tensors": {}})):
        meta = {"python": {"format": "dcp", "torch_saved": [], "dcp_metadata": dcp_md}}
        _core.save(tessera.Store(store, create=True), name, [tensor_entry("w", w)], metadata=json.dumps(meta))
    with pytest.raises(BaseException) as raised:
        dcp.load({"w": torch.zeros(2, 3)}, storage_reader=StorageReader(store, "bad"), no_dist=True)
    e = raised.value
    assert "malformed DCP metadata" in str(e) and "tensor 'w'" in str(e), str(e)
    with pytest.raises(BaseException) as raised:
        dcp.load({"w": torch.zeros(2, 3)}, storage_reader=StorageReader(store, "newer"), no_dist=True)
    e = raised.value
    assert "newer tessera" in str(e), str(e)
    sd = {"w": torch.zeros(2, 3)}
    tessera.load(sd, store, "bad")  # the direct API reads tensors from the catalog alone
    assert torch.equal(sd["w"], w)


def _native_save(rank, world, store):
    tessera.save(states.state(states.mesh1d(), 0, salt=2), store, "native")


def test_native_checkpoint_loads_through_dcp_and_back(store, ranks):
    ranks(_native_save, 2, store)
    ranks(_dcp_load, 3, store, "native", 1, 2)  # DCP's planners over a tessera.save checkpoint
    ranks(_dcp_save, 2, store, "via-dcp", 0, 4)
    sd = {"model": {k.removeprefix("model."): torch.zeros(s, dtype=d) for k, (s, d) in states.TENSORS.items()},
          "optim": {"step": 0, "lr": 0.0, "name": "", "betas": None}}
    tessera.load(sd, store, "via-dcp")  # tessera.load over a DCP-written checkpoint
    states.check_state(sd, 4)
    md = StorageReader(store, "native").read_metadata()
    assert set(md.state_dict_metadata) >= {"model.embed.weight", "optim.step", "optim.betas"}, md.state_dict_metadata


def _fs_save(rank, world, path):
    dcp.save(states.state(states.mesh1d(), 0, salt=7), storage_writer=dcp.FileSystemWriter(path))


def test_import_dcp_directory(tmp_path, ranks):
    tmp = str(tmp_path)
    src, store = os.path.join(tmp, "dcp"), os.path.join(tmp, "store")
    ranks(_fs_save, 2, src)
    env = dict(os.environ, TESSERA_PYTHON=sys.executable)
    out = subprocess.run([sys.executable, "-m", "tessera", "import-dcp", src, store, "imported"], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "imported" in out.stdout, out.stdout
    assert tessera.Store(store).checkpoint("imported").world_size == 1  # one process imports
    cli = os.environ.get("TESSERA_CLI")
    if cli:  # the C++ CLI forwards to python -m tessera
        out = subprocess.run([cli, "import-dcp", src, store, "again", "--batch-bytes", "1000", "--quiet"], env=env,
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert tessera.Store(store).checkpoint("again").added_bytes == 0  # same chunks, deduplicated
        out = subprocess.run([cli, "import-dcp", src, store, "again"], env=env, capture_output=True, text=True)
        assert out.returncode == 2 and "already exists" in out.stderr, (out.returncode, out.stderr)
    _dcp_load_plain(store, "imported", salt=7)
    sd = {"model": {k.removeprefix("model."): torch.zeros(s, dtype=d) for k, (s, d) in states.TENSORS.items()},
          "optim": {"step": 0, "lr": 0.0, "name": "", "betas": None}}
    tessera.load(sd, store, "imported")
    states.check_state(sd, 7)
    # Progress: once at the start, once per batch, then one finished report at the total.
    from tessera.import_dcp import import_dcp
    reports = []
    import_dcp(src, store, "with-progress", batch_bytes=1000, progress=reports.append)
    total = sum(torch.zeros(s, dtype=d).nbytes for s, d in states.TENSORS.values())
    assert len(reports) >= 3 and all(r.operation == "import-dcp" and r.total_bytes == total for r in reports), reports
    assert [r.finished for r in reports] == [False] * (len(reports) - 1) + [True], reports
    assert reports[0].done_bytes == 0 and reports[-1].done_bytes == total, reports
    assert all(a.done_bytes <= b.done_bytes for a, b in zip(reports, reports[1:])), reports

