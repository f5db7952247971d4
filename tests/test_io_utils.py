import os
import stat

import pytest

from nerfseg.io_utils import atomic_write, atomic_write_bytes, atomic_write_text


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"old")

    def broken(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_new_file_gets_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_bytes(tmp_path / "f", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


# ---- output paths checked before the work ------------------------------------------------------------


def _listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_writable_dir_is_created_and_probe_leaves_nothing(tmp_path):
    from nerfseg.io_utils import ensure_writable_dir

    target = tmp_path / "a" / "b"
    assert ensure_writable_dir(target, "--out") == target
    assert target.is_dir() and _listing(tmp_path) == ["a", "a/b"]
    ensure_writable_dir(target, "--out")  # an existing folder is fine too
    assert _listing(tmp_path) == ["a", "a/b"]


def test_writable_dir_errors_name_the_path_and_the_option(tmp_path):
    from nerfseg.errors import DataError
    from nerfseg.io_utils import ensure_writable_dir

    afile = tmp_path / "afile"
    afile.write_text("keep me")
    with pytest.raises(DataError, match=r"afile: --out must be a folder, but this is a file") as err:
        ensure_writable_dir(afile, "--out")
    assert err.value.path == afile
    with pytest.raises(DataError, match=r"afile/x/y: --out: cannot create this folder: .*afile is a file"):
        ensure_writable_dir(afile / "x" / "y", "--out")
    assert afile.read_text() == "keep me"


def test_unwritable_folder_is_named(tmp_path, monkeypatch):
    """A folder that takes no new file (read-only, no permission; root ignores chmod, so the failure of the
    probe file is simulated)."""
    import tempfile

    from nerfseg.errors import DataError
    from nerfseg.io_utils import ensure_writable_dir, ensure_writable_file

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(DataError, match=r"ro: --out: cannot write into this folder \(Permission denied\)"):
        ensure_writable_dir(tmp_path / "ro", "--out")
    with pytest.raises(DataError, match=r"--json's folder: cannot write into this folder"):
        ensure_writable_file(tmp_path / "ro" / "s.json", "--json")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_for_real(tmp_path):
    from nerfseg.errors import DataError
    from nerfseg.io_utils import ensure_writable_dir

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(DataError, match="cannot write into this folder"):
            ensure_writable_dir(ro, "--out")
    finally:
        ro.chmod(0o755)


def test_writable_file_checks(tmp_path):
    from nerfseg.errors import DataError
    from nerfseg.io_utils import ensure_writable_file

    target = tmp_path / "new" / "s.json"
    assert ensure_writable_file(target, "--json") == target
    assert target.parent.is_dir() and not target.exists()  # the file itself is not created
    with pytest.raises(DataError, match=r"new: --json must be a file name, but this is a folder"):
        ensure_writable_file(tmp_path / "new", "--json")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match=r"afile/s.json: --json: cannot write this file: .*afile is a file"):
        ensure_writable_file(tmp_path / "afile" / "s.json", "--json")


# ---- torch files loaded with weights_only, errors in our own words -----------------------------------


class _Evil:
    def __reduce__(self):
        return (print, ("executed",))


@pytest.mark.parametrize(
    "kind, problem",
    [
        ("garbage", "the file is corrupt or not a PyTorch file"),
        ("empty", "the file is corrupt or not a PyTorch file"),
        ("truncated", "the file is corrupt or truncated (an incomplete PyTorch zip archive)"),
        ("object", "it holds a Python object (argparse.Namespace) besides tensors and plain values"),
        ("code", "it holds a Python object (print) besides tensors and plain values"),
    ],
)
def test_load_torch_file_errors_never_advise_weights_only_false(tmp_path, kind, problem, capsys):
    import argparse

    import torch

    from nerfseg.errors import DataError
    from nerfseg.io_utils import load_torch_file

    path = tmp_path / "bad.pt"
    if kind == "garbage":
        path.write_bytes(b"this is not a checkpoint\n" * 4)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        torch.save({"w": torch.zeros(1000)}, path)
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "object":
        torch.save({"args": argparse.Namespace(a=1)}, path)
    else:
        torch.save({"x": _Evil()}, path)
    with pytest.raises(DataError) as err:
        load_torch_file(path, "checkpoint")
    message = str(err.value)
    assert message.startswith(f"{path}: not a readable checkpoint: {problem}"), message
    assert "weights_only" not in message and "torch.load" not in message and "trust" not in message
    assert len(message.splitlines()) == 1
    assert "executed" not in capsys.readouterr().out  # nothing in the file ran


def test_load_torch_file_reads_tensors_and_plain_values(tmp_path):
    import torch

    from nerfseg.errors import DataError
    from nerfseg.io_utils import load_torch_file

    path = tmp_path / "ok.pt"
    torch.save({"w": torch.arange(3), "name": "x", "n": [1, 2]}, path)
    loaded = load_torch_file(path, "checkpoint")
    assert torch.equal(loaded["w"], torch.arange(3)) and loaded["name"] == "x" and loaded["n"] == [1, 2]
    with pytest.raises(DataError, match="nope.pt: checkpoint not found"):
        load_torch_file(tmp_path / "nope.pt", "checkpoint")
    with pytest.raises(DataError, match="is a folder, not a checkpoint"):
        load_torch_file(tmp_path, "checkpoint")
