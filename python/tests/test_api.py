"""tessera.save / tessera.load: single process and several Gloo ranks."""
import os
import re
import sys

import pytest
import states
import torch

import tessera
from tessera._torch_compat import default_store


def test_roundtrip_values_and_stateful(store):
    lin = torch.nn.Linear(8, 4)
    sd = {"model": lin, "extra": {"w": torch.randn(5, 6).t(), "step": 12, "lr": 1e-3, "tag": "run-7", "raw": b"\x00\x01",
                                   "big": 2**70, "flag": True, "sched": {"milestones": [1, 2]}}}
    r = tessera.save(sd, store, "a")
    assert r.chunks_written == 3 and r.packs >= 1, r  # packs: one per writer thread that got work
    lin2 = torch.nn.Linear(8, 4)
    target = {"model": lin2, "extra": {"w": torch.zeros(6, 5), "step": 0, "lr": 0.0, "tag": "", "raw": b"", "big": 0,
                                       "flag": None, "sched": {"milestones": None}}}
    res = tessera.load(target, store, "a")
    assert res.missing_keys == [] and res.unexpected_keys == [], res
    assert torch.equal(lin2.weight, lin.weight) and torch.equal(lin2.bias, lin.bias)
    e = target["extra"]
    assert torch.equal(e["w"], sd["extra"]["w"])
    assert (e["step"], e["lr"], e["tag"], e["raw"], e["big"], e["flag"]) == (12, 1e-3, "run-7", b"\x00\x01", 2**70, True)
    assert e["sched"]["milestones"] == [1, 2]
    info = tessera.Store(store, read_only=True).checkpoint("a")
    assert info.tensors == 3 and info.values == 7, info


def test_dedup_second_save_writes_nothing(store):
    sd = {"w": torch.randn(512, 512), "b": torch.randn(300)}
    first = tessera.save(sd, store, "one", chunk_bytes=64 << 10)
    second = tessera.save(sd, store, "two", chunk_bytes=64 << 10)
    assert first.written_bytes > 0 and first.chunks_written == first.chunks
    assert second.written_bytes == 0 and second.chunks_written == 0 and second.packs == 0, second
    assert tessera.Store(store).checkpoint("two").added_bytes == 0


def test_progress_callbacks_see_bytes_rise_to_the_total(store):
    sd = {"w": torch.randn(512, 512), "b": torch.randn(300), "step": 3}
    total = (512 * 512 + 300) * 4
    for op, run in [("save", lambda cb: tessera.save(sd, store, "p", chunk_bytes=64 << 10, progress=cb)),
                    ("load", lambda cb: tessera.load({"w": torch.zeros(512, 512), "b": torch.zeros(300), "step": 0},
                                                     store, "p", progress=cb))]:
        seen = []
        run(seen.append)
        assert len(seen) >= 2 and all(isinstance(p, tessera.Progress) for p in seen), seen
        assert [p.operation for p in seen] == [op] * len(seen)
        assert all(p.total_bytes == total for p in seen), seen
        assert [p.finished for p in seen] == [False] * (len(seen) - 1) + [True]
        assert all(a.done_bytes <= b.done_bytes for a, b in zip(seen, seen[1:])) and seen[-1].done_bytes == total

    # True on a stream that is not a terminal: no bar, no error; a bad value is refused.
    tessera.save(sd, store, "q", progress=True)
    try:
        tessera.save(sd, store, "r", progress="yes")
        raise AssertionError("a string progress was accepted")
    except TypeError as e:
        assert "progress" in str(e)

    # A callback that raises does not stop the save; the error goes to sys.unraisablehook.
    hooked = []
    old_hook, sys.unraisablehook = sys.unraisablehook, hooked.append
    try:
        def bad(p):
            raise ValueError("callback failed")
        tessera.save(sd, store, "s", progress=bad)
    finally:
        sys.unraisablehook = old_hook
    assert hooked and "callback failed" in str(hooked[0].exc_value), hooked
    got = {"w": torch.zeros(512, 512), "b": torch.zeros(300), "step": 0}
    tessera.load(got, store, "s")
    assert torch.equal(got["w"], sd["w"])


def test_reading_never_creates_a_store_and_records_are_lean(tmp_path):
    from tessera.dcp import StorageReader
    d = str(tmp_path)
    for path in (d, os.path.join(d, "missing")):  # an existing non-store directory, and no directory at all
        before = sorted(os.listdir(d))
        with pytest.raises(tessera.StoreError, match=re.escape(path)):
            tessera.Store(path)
        with pytest.raises(tessera.StoreError, match=re.escape(path)):
            tessera.load({"w": torch.zeros(2)}, path, "c")
        md = StorageReader(path, "c").read_metadata()  # DCP swallows this error; the reader keeps it
        assert md.state_dict_metadata == {}
        assert sorted(os.listdir(d)) == before, "a read created files"
    store = os.path.join(d, "store")
    tessera.save({"w": torch.ones(3)}, store, "c", metadata={"note": "x" * 10000})
    rec = tessera.Store(store).checkpoints()
    assert rec[0].metadata is None and rec[0].name == "c"
    assert "x" * 10000 in tessera.Store(store).checkpoints(metadata=True)[0].metadata


def test_bad_inputs_from_python_are_refused_naming_them(store):
    tessera.save({"w": torch.arange(6.0)}, store, "c")
    q = torch.quantize_per_tensor(torch.tensor([1.5, -0.3, 0.7]), 0.1, 0, torch.qint8)
    with pytest.raises(tessera.InvalidArgument, match=re.escape("'q'")):
        tessera.save({"q": q}, store, "q")  # would lose scale
    # Thread counts: at most 1024 in every API (the library refuses more before starting any thread).
    threads_before = len(os.listdir("/proc/self/task"))
    too_many = "threads must be between 0 (one per core) and 1024, got 1000000"
    with pytest.raises(tessera.InvalidArgument, match=re.escape(too_many)):
        tessera.save({"w": torch.ones(2)}, store, "t", threads=10**6)
    with pytest.raises(tessera.InvalidArgument, match=re.escape(too_many)):
        tessera.load({"w": torch.zeros(6)}, store, "c", threads=10**6)
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException  # DCP wraps every rank's error
    from tessera.dcp import StorageReader
    with pytest.raises(CheckpointException, match=re.escape(too_many)):
        dcp.load({"w": torch.zeros(6)}, storage_reader=StorageReader(store, "c", threads=10**6))
    assert len(os.listdir("/proc/self/task")) == threads_before
    with pytest.raises(tessera.InvalidArgument, match=re.escape("threads")):
        tessera.load({"w": torch.zeros(6)}, store, "c", threads=-1)
    with pytest.raises(tessera.InvalidArgument, match=re.escape("keep_last must be 0 (keep all) or positive, got -1")):
        tessera.save({"w": torch.ones(2)}, store, "k", keep_last=-1)
    expanded = torch.zeros(1).expand(6)  # six views of one element
    with pytest.raises(tessera.InvalidArgument, match=re.escape("'w'")):
        tessera.load({"w": expanded}, store, "c")
    assert torch.equal(expanded, torch.zeros(6))
    assert [c.name for c in tessera.Store(store).checkpoints()] == ["c"]
    assert len(os.listdir(os.path.join(store, "packs"))) == 1, "a refused save wrote a pack"


def test_every_compression_name_is_accepted_and_others_are_refused_naming_them(store):
    names = ("auto", "none", "lz4", "shuffle-lz4", "shuffle-huffman")
    assert tessera._core.COMPRESSIONS == names
    w = torch.zeros(256, 256)  # every codec shrinks it
    for name in names:
        r = tessera.save({"w": w}, store, name, compression=name, dedup=False)
        if name == "none":
            assert r.written_bytes == r.logical_bytes, r
        elif name != "auto":  # auto stores raw on a memory filesystem, which tmp_path may be
            assert r.written_bytes < r.logical_bytes // 16, (name, r)
        out = {"w": torch.ones(256, 256)}
        tessera.load(out, store, name)
        assert torch.equal(out["w"], w), name
    for bad in ("shuffle+lz4", "LZ4", "zstd"):
        with pytest.raises(tessera.InvalidArgument, match=re.escape(
                f"unknown compression '{bad}' (valid: auto, none, lz4, shuffle-lz4, shuffle-huffman)")):
            tessera.save({"w": w}, store, "bad", compression=bad)
    assert sorted(c.name for c in tessera.Store(store).checkpoints()) == sorted(names)
    # python -m tessera import-dcp refuses it before reading anything.
    import subprocess
    out = subprocess.run([sys.executable, "-m", "tessera", "import-dcp", "no-dir", store, "x", "--compression",
                          "shuffle+lz4"], capture_output=True, text=True)
    assert out.returncode == 2 and "'shuffle+lz4'" in out.stderr, out.stderr


def test_errors_name_the_culprit(store):
    tessera.save({"w": torch.ones(4, 3), "n": 1}, store, "c")
    with pytest.raises(tessera.NotFoundError, match=re.escape("'nope'")):
        tessera.load({"w": torch.zeros(4, 3)}, store, "nope")
    with pytest.raises(tessera.NotFoundError, match=re.escape("'v'")):
        tessera.load({"w": torch.zeros(4, 3), "v": torch.zeros(2)}, store, "c")
    with pytest.raises(tessera.InvalidArgument, match=re.escape("tensor 'w': saved shape [4, 3], target [3, 4]")):
        tessera.load({"w": torch.zeros(3, 4)}, store, "c")
    with pytest.raises(tessera.InvalidArgument, match=re.escape("tensor 'w': saved dtype float32, target float64")) as raised:
        tessera.load({"w": torch.zeros(4, 3, dtype=torch.float64)}, store, "c")
    e = raised.value
    # What a Python caller can do, not a C++ option Python does not have.
    assert "LoadOptions" not in str(e) and "allow_cast" not in str(e), str(e)
    assert ".to(torch.float64)" in str(e) and "tessera.dcp.StorageReader" in str(e), str(e)
    with pytest.raises(tessera.InvalidArgument, match=re.escape("'n'")):
        tessera.load({"n": torch.zeros(1)}, store, "c")
    with pytest.raises(tessera.AlreadyExistsError, match=re.escape("already exists")):
        tessera.save({"w": torch.ones(1)}, store, "c")
    res = tessera.load({"w": torch.zeros(4, 3), "v": torch.zeros(2)}, store, "c", strict=False)
    assert res.missing_keys == ["v"] and res.unexpected_keys == ["n"], res
    with pytest.raises(tessera.StoreError):
        tessera.Store(os.path.join(store, "catalog.db"), read_only=True)


def _store_keys() -> int:
    """Keys in the job's Store (torch.distributed's default), counted between barriers."""
    torch.distributed.barrier()
    n = default_store().num_keys()
    torch.distributed.barrier()
    return n


def _save_sharded(rank, world, store, dim):
    sd = states.state(states.mesh1d(), dim)
    keys = _store_keys()
    r = tessera.save(sd, store, f"dim{dim}-w{world}", chunk_bytes=4096)
    assert r.logical_bytes > 0
    assert _store_keys() == keys, "the save left keys in the job's Store"


def _load_sharded(rank, world, store, saved, dim):
    sd = states.state(states.mesh1d(), dim, zeros=True)
    tessera.load(sd, store, saved)
    states.check_state(sd)


def _load_plain(store, saved):
    sd = {"model": {k.removeprefix("model."): torch.zeros(s, dtype=d) for k, (s, d) in states.TENSORS.items()},
          "optim": {"step": 0, "lr": 0.0, "name": "", "betas": None}}
    tessera.load(sd, store, saved)
    states.check_state(sd)


def test_dtensor_save_2_ranks_load_3_ranks_other_layout(store, ranks):
    ranks(_save_sharded, 2, store, 0)
    ranks(_load_sharded, 3, store, "dim0-w2", 1)  # rows -> columns (uneven: 50 columns on 3 ranks)
    _load_plain(store, "dim0-w2")  # one process, whole tensors
    info = tessera.Store(store).checkpoint("dim0-w2")
    assert info.world_size == 2, info


def _save_2d(rank, world, store):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor
    mesh = init_device_mesh("cpu", (2, 2))
    sd = {"model": {}, "optim": {"step": 3, "lr": 0.01, "name": "adamw", "betas": (0.9, 0.95)}}
    for k, (shape, dtype) in states.TENSORS.items():
        placements = [Replicate(), Shard(0)]
        sd["model"][k.removeprefix("model.")] = distribute_tensor(states.full(k, shape, dtype), mesh, placements)
    r = tessera.save(sd, store, "2d", chunk_bytes=1024)
    # Replicas split the chunks: all ranks together write each chunk once.
    counts = [None] * world
    torch.distributed.all_gather_object(counts, (r.chunks, r.logical_bytes))
    if rank == 0:
        entries = tessera.describe(tessera.Store(store, read_only=True), "2d")
        tensors = [e for e in entries if e.kind == "tensor"]
        assert sum(c for c, _ in counts) == sum(e.chunks for e in tensors), (counts, tensors)
        assert sum(b for _, b in counts) == sum(e.logical_bytes for e in tensors), counts
        assert all(c > 0 for c, _ in counts), counts  # every replica wrote its share


def test_replicated_dims_write_each_chunk_once(store, ranks):
    ranks(_save_2d, 4, store)
    _load_plain(store, "2d")


def _failing_rank(rank, world, store, how):
    from torch.distributed.tensor import DTensor, Partial
    from tessera import api
    mesh = states.mesh1d()
    sd = states.state(mesh, 0)
    if rank == 1 and how == "python":
        sd["model"]["bad"] = DTensor.from_local(torch.ones(2), mesh, [Partial()])
    if rank == 1 and how == "shape":
        sd["model"]["counts"] = torch.zeros(8, 3, dtype=torch.int64)
    if rank == 1 and how in ("corrupt", "foreign"):  # Python fails before the C++ save, with this class
        cls = tessera.CorruptionError if how == "corrupt" else KeyError

        def fail(*args, **kwargs):
            raise cls("injected on rank 1 (the words 'already exists' do not decide the class)")
        api._describe_for_save = fail
    keys = _store_keys()
    with pytest.raises(tessera.Error) as raised:
        tessera.save(sd, store, "bad", timeout=60)
    e = raised.value
    assert _store_keys() == keys, "the failed save left keys in the job's Store"
    # The same class on every rank: that of the failure, whichever rank saw it (tessera.Error for a foreign one).
    expected = {"python": tessera.InvalidArgument, "shape": tessera.InvalidArgument,
                "corrupt": tessera.CorruptionError, "foreign": tessera.Error}[how]
    assert type(e) is expected, (rank, type(e), str(e))
    if how == "python":
        assert "rank 1" in str(e) and "Partial" in str(e), str(e)
    elif how == "shape":
        assert "model.counts" in str(e), str(e)
    else:
        assert "failed: rank 1: " in str(e) and "injected on rank 1" in str(e), str(e)
    torch.distributed.barrier()
    assert "bad" not in {c.name for c in tessera.Store(store, read_only=True).checkpoints()}


def test_a_failing_rank_fails_the_save_everywhere(store, ranks):
    ranks(_failing_rank, 2, store, "python")   # a rank fails in Python, before the C++ save
    ranks(_failing_rank, 2, store, "shape")    # ranks disagree on a global shape: the commit refuses
    ranks(_failing_rank, 2, store, "corrupt")  # a tessera.Error subclass raised in Python
    ranks(_failing_rank, 2, store, "foreign")  # an exception that is not tessera's


def _cannot_open_store(rank, world, store):
    """Rank 1 cannot open its store (a file is in the way): every rank raises its cause at once."""
    blocked = store + "-blocked"
    if rank == 1:
        with open(blocked, "w") as f:
            f.write("not a directory")
    path = blocked + "/store" if rank == 1 else store
    with pytest.raises(tessera.Error) as raised:
        tessera.save({"x": torch.ones(4)}, path, "c", timeout=600)  # waiting out the timeout would hang the test
    e = raised.value
    assert type(e) is tessera.StoreError, (rank, type(e), str(e))
    assert "save of checkpoint 'c' failed: rank 1: " in str(e) and blocked in str(e), str(e)
    torch.distributed.barrier()
    if rank == 0:
        assert tessera.Store(store, read_only=True).checkpoints() == []


def test_a_rank_that_cannot_open_the_store_fails_the_save_everywhere_at_once(store, ranks):
    ranks(_cannot_open_store, 2, store)


def _typed_everywhere(rank, world, store):
    """Every rank raises the same tessera.Error subclass, whichever rank failed."""
    from tessera import _replicated
    w = torch.arange(512 * 1024, dtype=torch.float32).reshape(512, 1024)  # 2 MiB: replicas read it once
    tessera.save({"w": w}, store, "w", chunk_bytes=256 << 10)  # a replica on every rank
    # Rank 0 refuses the save (the name exists): AlreadyExistsError on every rank.
    with pytest.raises(tessera.Error) as raised:
        tessera.save({"w": w}, store, "w", timeout=60)
    e = raised.value
    assert type(e) is tessera.AlreadyExistsError, (rank, type(e), str(e))
    # A bad option, refused inside the protocol on every rank.
    with pytest.raises(tessera.Error) as raised:
        tessera.save({"w": w}, store, "k", keep_last=-1, timeout=60)
    e = raised.value
    assert type(e) is tessera.InvalidArgument and "keep_last" in str(e), (rank, type(e), str(e))
    # tessera.load: rank 1 asks for a key the checkpoint lacks: NotFoundError on every rank, naming it.
    want = {"w": torch.zeros(512, 1024)}
    if rank == 1:
        want["missing"] = torch.zeros(2)
    with pytest.raises(tessera.Error) as raised:
        tessera.load(want, store, "w")
    e = raised.value
    assert type(e) is tessera.NotFoundError and "'missing'" in str(e), (rank, type(e), str(e))
    if rank != 1:
        assert "failed on rank(s) 1" in str(e), str(e)
    # A replicated read that fails on rank 2: its class on every rank.
    if rank == 2:
        def broken(*args, **kwargs):
            raise tessera.CorruptionError("injected: pack unreadable on rank 2")
        _replicated.read_boxes = broken
    with pytest.raises(tessera.Error) as raised:
        tessera.load({"w": torch.zeros(512, 1024)}, store, "w")
    e = raised.value
    assert type(e) is tessera.CorruptionError, (rank, type(e), str(e))
    assert ("injected" in str(e)) if rank == 2 else ("failed on rank(s) 2" in str(e)), str(e)


def test_a_failure_raises_the_same_class_on_every_rank(store, ranks):
    ranks(_typed_everywhere, 3, store)


def _empty_shards(rank, world, store):
    import torch.distributed.checkpoint as dcp
    from torch.distributed.tensor import Shard, distribute_tensor

    from tessera.dcp import StorageReader, StorageWriter
    mesh = states.mesh1d()
    full = torch.arange(8.0).reshape(2, 4)
    sd = {"x": distribute_tensor(full, mesh, [Shard(0)]), "empty": torch.zeros(0, 3)}
    assert sd["x"].to_local().shape[0] == (0 if rank == 2 else 1)  # rank 2 holds no rows
    tessera.save(sd, store, "direct")
    dcp.save(sd, storage_writer=StorageWriter(store, "dcp"))
    for name in ("direct", "dcp"):
        t = {"x": distribute_tensor(torch.zeros(2, 4), mesh, [Shard(1)]), "empty": torch.zeros(0, 3)}
        if name == "direct":
            tessera.load(t, store, name)
        else:
            dcp.load(t, storage_reader=StorageReader(store, name))
        assert torch.equal(t["x"].full_tensor(), full), name


def test_empty_shards_and_empty_tensors(store, ranks):
    ranks(_empty_shards, 3, store)


def test_an_io_failure_is_a_tessera_error_naming_the_file(store):
    # Files capped at 64 KiB (as a full disk would stop them): the pack
    # write fails; Python sees tessera.Error (not a bare RuntimeError), and
    # the store keeps nothing of the failed save.
    import subprocess
    import textwrap
    code = textwrap.dedent(f"""
        import resource, signal, sys, torch, tessera
        tessera.save({{"small": torch.ones(4)}}, {store!r}, "before")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))
        try:
            tessera.save({{"big": torch.randn(1 << 18)}}, {store!r}, "big", compression="none")
        except tessera.Error as e:
            print("ERROR", type(e).__name__, e)
            sys.exit(0)
        print("saved")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ)
    assert r.stdout.startswith("ERROR"), (r.stdout, r.stderr)
    assert "File too large" in r.stdout and store in r.stdout, r.stdout
    assert [c.name for c in tessera.Store(store).checkpoints()] == ["before"]


def test_extension_uses_the_shared_cpp_runtime():
    # torch's libstdc++.so.6 and a static copy inside tessera._core in one
    # process crashed the extension (a toolchain that links libstdc++
    # statically by default): the extension must need the shared one and
    # define none of its own std:: functions.
    import shutil
    import subprocess
    from tessera import _core
    if not shutil.which("readelf") or not shutil.which("nm"):
        pytest.skip("no readelf/nm")
    needed = subprocess.run(["readelf", "-d", _core.__file__], capture_output=True, text=True, check=True).stdout
    assert "libstdc++.so.6" in needed, needed
    symbols = subprocess.run(["nm", "-C", "--defined-only", _core.__file__], capture_output=True, text=True,
                             check=True).stdout
    own = [line for line in symbols.splitlines() if " T std::" in line]
    assert len(own) < 20, own[:20]  # inline template instantiations only, not the runtime (~800)


def test_cli_verbs_as_functions(store, tmp_path):
    w = torch.arange(64 * 1024, dtype=torch.float32)
    tessera.save({"w": w, "b": torch.ones(10), "step": 1}, store, "a", chunk_bytes=64 * 1024)
    w2 = w.clone()
    w2[:100] = -1  # one chunk of four changes
    tessera.save({"w": w2, "b": torch.ones(10), "step": 2}, store, "b", chunk_bytes=64 * 1024)

    assert [c.name for c in tessera.ls(store)] == ["a", "b"]
    shown = {e.name: e for e in tessera.show(store, "b")}
    assert shown["w"].kind == "tensor" and shown["w"].shape == [64 * 1024] and shown["step"].kind == "int"
    d = tessera.diff(store, "a", "b")
    assert not d.identical and d.unchanged == 1, d  # b unchanged; w and step changed
    changed = {c.name: c for c in d.changed}
    assert changed["w"].change == "content" and changed["w"].changed_chunks == 1, changed
    assert changed["step"].change == "value", changed

    seen = []
    v = tessera.verify(store, progress=seen.append)
    assert v.ok and v.chunks_checked > 0 and seen[-1].finished, v
    try:
        tessera.diff(store, "a", "nope")
        raise AssertionError("an unknown checkpoint was diffed")
    except tessera.NotFoundError as e:
        assert "nope" in str(e)

    out = os.path.join(str(tmp_path), "export")
    e = tessera.export(store, "b", out)
    assert e.tensors == 2 and os.path.getsize(os.path.join(out, e.files[0].name)) > w.nbytes, e

    # rm frees nothing while b shares a's packs; rm with gc reclaims what only a used.
    r = tessera.rm(store, ["a"], gc=True)
    assert r.removed == ["a"] and r.gc.freed_bytes > 0 and not r.gc.dry_run, r
    assert [c.name for c in tessera.ls(store)] == ["b"]
    assert tessera.gc(store, dry_run=True).bytes_to_free == 0
    got = {"w": torch.zeros_like(w), "b": torch.zeros(10), "step": 0}
    tessera.load(got, store, "b")
    assert torch.equal(got["w"], w2) and got["step"] == 2

    # A damaged pack: verify names it, raises nothing.
    pack_dir = os.path.join(store, "packs")
    pack = os.path.join(pack_dir, sorted(os.listdir(pack_dir))[0])
    with open(pack, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    v = tessera.verify(store)
    assert not v.ok and v.damaged and os.path.basename(pack) in v.damaged[0].pack, v

