"""The package's types: entry descriptions built by keyword, typed result
records (and the dict-style access they keep, deprecated, for one release),
the extension's stubs (_core.pyi) against the extension itself, the
PEP 561 marker, and torch's private API kept to _torch_compat.py."""
import ast
import json
import os
import pickle
import re
import warnings

import pytest
import torch

import tessera
from tessera import _core, _torch_compat

PACKAGE = os.path.dirname(tessera.__file__)
SOURCE_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

RECORDS = ["SaveResult", "LoadResult", "CheckpointSummary", "EntryInfo", "DamagedChunk", "CatalogProblem",
           "VerifyReport", "ValueStats", "EntryDiff", "DiffReport", "GcResult", "RemoveResult", "ExportedFile",
           "ExportResult"]


def test_records_are_typed_keyword_built_comparable_and_picklable():
    r = tessera.SaveResult(logical_bytes=10, written_bytes=4, removed=["old"])
    assert (r.logical_bytes, r.written_bytes, r.chunks, r.removed) == (10, 4, 0, ["old"])
    assert tessera.SaveResult._fields == ("logical_bytes", "written_bytes", "chunks", "chunks_written", "packs",
                                          "removed", "freed_bytes")
    assert r == tessera.SaveResult(logical_bytes=10, written_bytes=4, removed=["old"]) != tessera.SaveResult()
    assert pickle.loads(pickle.dumps(r)) == r
    assert repr(r).startswith("SaveResult(logical_bytes=10, written_bytes=4, ")
    with pytest.raises(AttributeError):
        r.written_bytes = 5  # read-only
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        tessera.SaveResult(bogus=1)
    with pytest.raises(TypeError):
        tessera.SaveResult(10)  # keyword only
    # Nested records: attributes, to_dict() all the way down (json-able), pickling.
    gc = tessera.GcResult(dry_run=False, freed_bytes=7, deleted_packs=["p1"])
    rm = tessera.RemoveResult(removed=["a"], gc=gc)
    assert rm.gc.freed_bytes == 7 and tessera.RemoveResult(removed=["a"]).gc is None
    assert json.loads(json.dumps(rm.to_dict()))["gc"]["deleted_packs"] == ["p1"]
    assert pickle.loads(pickle.dumps(rm)) == rm
    v = tessera.VerifyReport(damaged=[tessera.DamagedChunk(chunk="ab", pack="p", problem="x", users=["c: w"])])
    assert not v.ok and v.damaged[0].users == ["c: w"] and v.to_dict()["damaged"][0]["pack"] == "p"
    d = tessera.EntryDiff(name="w", stats=tessera.ValueStats(elements=3))
    assert d.stats.elements == 3 and tessera.EntryDiff(name="w").stats is None
    assert tessera.DiffReport().identical and not tessera.DiffReport(added=["x"]).identical
    for name in RECORDS:
        cls = getattr(tessera, name)
        assert cls is getattr(_core, name) and name in tessera.__all__
        assert cls() == cls(), name  # every field has a default


def test_results_of_the_api_are_records(store, tmp_path):
    w = torch.arange(64 * 1024, dtype=torch.float32)
    s = tessera.save({"w": w, "step": 1}, store, "a", chunk_bytes=64 * 1024)
    assert isinstance(s, tessera.SaveResult) and s.chunks == 4 and s.chunks_written == 4
    tessera.save({"w": w + 1, "step": 2}, store, "b", chunk_bytes=64 * 1024)
    got = {"w": torch.zeros_like(w), "step": 0, "extra": torch.zeros(1)}
    r = tessera.load(got, store, "a", strict=False)
    assert isinstance(r, tessera.LoadResult) and r.missing_keys == ["extra"] and r.bytes_read > 0
    [a, b] = tessera.ls(store)
    assert isinstance(a, tessera.CheckpointSummary) and (a.name, a.tensors, a.values) == ("a", 1, 1)
    assert a.metadata is None and "tessera.save" in tessera.Store(store).checkpoint("a").metadata
    entries = {e.name: e for e in tessera.show(store, "b")}
    assert isinstance(entries["w"], tessera.EntryInfo) and entries["w"].shape == [64 * 1024]
    assert entries["w"].row_starts == [0, 16384, 32768, 49152] and entries["step"].kind == "int"
    d = tessera.diff(store, "a", "b", values=True)
    assert isinstance(d, tessera.DiffReport) and {c.name for c in d.changed} == {"w", "step"}
    assert next(c for c in d.changed if c.name == "w").stats.elements == 64 * 1024
    assert isinstance(tessera.verify(store), tessera.VerifyReport)
    e = tessera.export(store, "b", tmp_path / "export")
    assert isinstance(e, tessera.ExportResult) and isinstance(e.files[0], tessera.ExportedFile)
    g = tessera.gc(store, dry_run=True)
    assert isinstance(g, tessera.GcResult) and g.dry_run and g.freed_bytes == 0
    rm = tessera.rm(store, "a", gc=True)
    assert isinstance(rm, tessera.RemoveResult) and rm.removed == ["a"] and not rm.gc.dry_run


def test_dict_style_access_still_works_and_warns(store):
    tessera.save({"w": torch.ones(3), "n": 1}, store, "a", metadata={"k": 1})
    r = tessera.save({"w": torch.ones(3)}, store, "b")
    with pytest.warns(DeprecationWarning, match=re.escape("SaveResult['chunks'] -> .chunks")):
        assert r["chunks"] == r.chunks
    with pytest.warns(DeprecationWarning):
        assert dict(r) == r.to_dict()
    with pytest.warns(DeprecationWarning):
        assert r.get("packs") == r.packs and r.get("nope", 5) == 5
    with pytest.warns(DeprecationWarning):
        assert [k for k, _ in r.items()] == list(tessera.SaveResult._fields)
    # A key the dict did not hold (None now) is absent, as it was.
    rec = tessera.ls(store)[0]
    with pytest.warns(DeprecationWarning):
        assert "metadata" not in rec and "name" in rec
    with pytest.warns(DeprecationWarning), pytest.raises(KeyError):
        rec["metadata"]
    with pytest.warns(DeprecationWarning):
        assert json.loads(tessera.Store(store).checkpoint("a")["metadata"])["k"] == 1
    # Nested results read as the nested dicts did.
    out = tessera.rm(store, ["a"], gc=True)
    with pytest.warns(DeprecationWarning):
        assert out["removed"] == ["a"] and out["gc"]["dry_run"] is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert out.gc.dry_run is False  # attributes never warn


def test_entries_are_built_by_keyword(store):
    t = torch.arange(6.0).reshape(2, 3)
    d = _core.TensorDesc(name="w", data_ptr=t.data_ptr(), dtype="float32", elem_size=4, sizes=[2, 3],
                         strides=[3, 1])
    assert (d.global_shape, d.offsets, d.replica_index, d.replica_count) == ([2, 3], [0, 0], 0, 1)
    with pytest.raises(TypeError):
        _core.TensorDesc("w", t.data_ptr(), "float32", 4, [2, 3], [3, 1])  # positional: refused
    staged = _core.StagedDesc(name="s", dtype="float32", elem_size=4, sizes=[4], offsets=[8], global_shape=[12],
                              acquire=lambda: 0, release=lambda cast: None)
    assert (staged.sizes, staged.global_shape, staged.offsets) == ([4], [12], [8])
    v = _core.ValueDesc(name="step", value=7)
    assert v.value == 7 and _core.ValueDesc(name="b", value=b"\x00").value == b"\x00"
    with pytest.raises(tessera.InvalidArgument, match="bool"):
        _core.ValueDesc(name="flag", value=True)
    s = _core.Store(store, create=True)
    _core.save(s, "c", [d, v])
    got = torch.zeros(2, 3)
    r = _core.load(s, "c", [_core.TensorDesc(name="w", data_ptr=got.data_ptr(), dtype="float32", elem_size=4,
                                             sizes=[2, 3], strides=[3, 1]), _core.ValueDesc(name="step", value=0)])
    assert torch.equal(got, t) and r.values == {"step": 7}
    # The tuples of earlier versions are refused, naming what came.
    with pytest.raises(tessera.InvalidArgument, match="TensorDesc, StagedDesc or ValueDesc, got <class 'tuple'>"):
        _core.save(s, "d", [("v", "n", 1)])


def _split_top(s: str) -> list[str]:
    """`s` split at the commas outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in s:
        depth += ch in "[(" and 1 or (-1 if ch in "])" else 0)
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [p.strip() for p in parts + [cur] if p.strip()]


def _doc_params(obj) -> list[str]:
    """The parameter names pybind11 writes in the first line of a function's doc."""
    line = obj.__doc__.strip().splitlines()[0]
    inner = line[line.index("(") + 1:line.rindex(")")]
    names = [p.split(":")[0].split("=")[0].strip() for p in _split_top(inner)]
    return [n for n in names if n not in ("self", "*") and not n.startswith("*")]


def _stub_params(fn: ast.FunctionDef) -> list[str]:
    a = fn.args
    return [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg != "self"]


def test_stubs_describe_the_extension():
    with open(os.path.join(PACKAGE, "_core.pyi")) as f:
        tree = ast.parse(f.read())
    stub_classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef) and not n.name.startswith("_")}
    stub_functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    stub_values = {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                   for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if not t.id.startswith("_")}
    public = {n for n in dir(_core) if not n.startswith("_")}
    assert set(stub_classes) | set(stub_functions) | stub_values == public, \
        (public ^ (set(stub_classes) | set(stub_functions) | stub_values))
    for name, fn in stub_functions.items():
        assert _stub_params(fn) == _doc_params(getattr(_core, name)), name
    for name, node in stub_classes.items():
        cls = getattr(_core, name)
        attrs = [n.name for n in node.body if isinstance(n, ast.FunctionDef) and any(
            isinstance(d, ast.Name) and d.id == "property" for d in n.decorator_list)]
        methods = {n.name: n for n in node.body if isinstance(n, ast.FunctionDef) and not any(
            isinstance(d, ast.Name) and d.id == "property" for d in n.decorator_list)}
        if name in RECORDS:
            assert node.bases and node.bases[0].id == "_Record", name
            assert tuple(attrs) == cls._fields, (name, attrs, cls._fields)
            continue
        if issubclass(cls, BaseException):
            continue
        have = {n for n, v in vars(cls).items() if not n.startswith("_")}
        assert set(attrs) | (set(methods) - {"__init__"}) == have, (name, have)
        if "__init__" in methods:
            assert _stub_params(methods["__init__"]) == _doc_params(cls.__init__), name
    for name in RECORDS:  # what every record has, as the stub's _Record says
        cls = getattr(_core, name)
        for method in ("to_dict", "__getitem__", "__contains__", "get", "keys", "items", "__eq__"):
            assert method in vars(cls), (name, method)


def test_the_package_ships_its_typing():
    assert os.path.isfile(os.path.join(PACKAGE, "py.typed"))
    assert os.path.isfile(os.path.join(PACKAGE, "_core.pyi"))


PRIVATE_TORCH = re.compile(r"torch(?:\.\w+)*\._\w+|distributed_c10d\._\w+|\._(?:local_tensor|spec)\b|Storage\._\w+")


def test_private_torch_is_used_in_torch_compat_only():
    for name in sorted(os.listdir(PACKAGE)):
        if name.endswith(".py") and name != "_torch_compat.py":
            with open(os.path.join(PACKAGE, name)) as f:
                found = PRIVATE_TORCH.findall(f.read())
            assert not found, (name, found)


def test_torch_is_in_the_tested_range():
    with open(os.path.join(SOURCE_ROOT, "pyproject.toml")) as f:
        pin = re.search(r'"torch>=(\d+)\.(\d+),<(\d+)\.(\d+)"', f.read())
    assert pin, "pyproject.toml pins torch as >=A.B,<C.D"
    low, high = (int(pin[1]), int(pin[2])), (int(pin[3]), int(pin[4]))
    assert (low, high) == _torch_compat.TORCH_RANGE
    installed = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
    assert low <= installed < high, (torch.__version__, low, high)
