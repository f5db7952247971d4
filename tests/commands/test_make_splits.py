"""`nerfseg make-splits`: regenerates the committed splits byte for byte, reads ids from a dataset when
given one (KITTI layouts and nuScenes), and fails with one clear line on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitti_testing import write_tree
from nerfseg.cli import main
from nerfseg.data.splits import read_split_file

COMMITTED = Path(__file__).resolve().parents[2] / "splits" / "semantickitti"


def test_regenerates_the_committed_splits(tmp_path, capsys):
    """The exact command of splits/README.md writes the committed files again, byte for byte."""
    readme = (COMMITTED.parent / "README.md").read_text()
    command = "nerfseg make-splits --dataset semantickitti --fractions 1,10,20,50 --seed 0 "
    command += "--out splits/semantickitti"
    assert command in readme
    argv = command.split()[1:-1] + [str(tmp_path)]
    assert main(argv) == 0
    assert "191 of 19130" in capsys.readouterr().out
    written = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in COMMITTED.iterdir())
    assert written == committed and len(written) == 4
    for name in written:
        assert (tmp_path / name).read_bytes() == (COMMITTED / name).read_bytes(), name


def test_ids_from_a_kitti_dataset(tmp_path):
    write_tree(tmp_path / "data", {"00": 5, "03": 3, "08": 2})  # 8 train scans, 08 is val
    out = tmp_path / "out"
    argv = ["make-splits", "--dataset", "scribblekitti", "--data", str(tmp_path / "data")]
    assert main([*argv, "--fractions", "50,12.5", "--seed", "3", "--out", str(out)]) == 0
    half = read_split_file(out / "scribblekitti_50pct_seed3.txt")
    eighth = read_split_file(out / "scribblekitti_12.5pct_seed3.txt")
    train = {f"00/{i:06d}" for i in range(5)} | {f"03/{i:06d}" for i in range(3)}
    assert len(half) == 4 and len(eighth) == 1 and set(eighth) < set(half) <= train


def test_missing_data_folder_falls_back_to_published_lengths(tmp_path, capsys):
    argv = ["make-splits", "--dataset", "semantickitti", "--data", str(tmp_path / "absent")]
    assert main([*argv, "--fractions", "1", "--out", str(tmp_path / "o")]) == 0
    assert "published sequence lengths" in capsys.readouterr().err
    ids = read_split_file(tmp_path / "o" / "semantickitti_1pct_seed0.txt")
    assert ids == read_split_file(COMMITTED / "semantickitti_1pct_seed0.txt")


def test_nuscenes_tokens(tmp_path, real_data, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "data"))
    from nuscenes_tree import build_real_tree

    tree = build_real_tree(tmp_path / "nus", real_data)
    argv = ["make-splits", "--dataset", "nuscenes", "--data", str(tree.root), "--version", "v1.0-mini"]
    assert main([*argv, "--fractions", "100", "--out", str(tmp_path / "o")]) == 0
    # mini_train holds scene A only; scene B (mini_val) must not appear.
    assert read_split_file(tmp_path / "o" / "nuscenes_100pct_seed0.txt") == [tree.lidar_token_a]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--fractions", "0"], "not a percentage"),
        (["--fractions", "1,abc"], "'abc' is not a number"),
        (["--fractions", "150"], "not a percentage"),
        (["--fractions", "10,10"], "repeated"),
        (["--dataset", "nuscenes"], "--data is required"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, extra, message):
    argv = ["make-splits", "--dataset", "semantickitti", "--out", str(tmp_path / "o"), *extra]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["make-splits", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "pct_seed" in out
