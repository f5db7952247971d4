"""nuScenes version detection (one v1.0-* folder: used and announced; several: an error naming them) and the
split names of each version (train on v1.0-mini is mini_train)."""

from __future__ import annotations

import pytest

from nerfseg.data.nuscenes_version import resolve_version, split_for_version, version_folders
from nerfseg.errors import ConfigError, DataError


def test_one_folder_is_used_and_announced_once(tmp_path, capsys):
    (tmp_path / "v1.0-mini").mkdir()
    (tmp_path / "samples").mkdir()
    (tmp_path / "v1.0-notes.txt").write_text("a file, not a table folder")
    assert version_folders(tmp_path) == ["v1.0-mini"]
    assert resolve_version(tmp_path, None) == "v1.0-mini"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "v1.0-mini" in err and str(tmp_path) in err
    assert resolve_version(tmp_path, "auto") == "v1.0-mini"
    assert capsys.readouterr().err == ""  # said once per root


def test_given_version_is_kept_without_a_word(tmp_path, capsys):
    (tmp_path / "v1.0-mini").mkdir()
    assert resolve_version(tmp_path, "v1.0-trainval") == "v1.0-trainval"  # the reader then names the folder
    assert capsys.readouterr().err == ""


def test_several_folders_ask_for_a_version(tmp_path):
    for name in ("v1.0-trainval", "v1.0-mini"):
        (tmp_path / name).mkdir()
    with pytest.raises(ConfigError) as err:
        resolve_version(tmp_path, None)
    message = str(err.value)
    assert "v1.0-mini, v1.0-trainval" in message
    assert "--version" in message and "--set data.version=" in message


def test_no_folder_names_the_root(tmp_path):
    with pytest.raises(DataError, match="no nuScenes table folder") as err:
        resolve_version(tmp_path, None)
    assert err.value.path == tmp_path
    with pytest.raises(DataError, match="folder not found"):
        resolve_version(tmp_path / "missing", "auto")


@pytest.mark.parametrize(
    ("split", "version", "expected"),
    [
        ("train", "v1.0-mini", "mini_train"),
        ("val", "v1.0-mini", "mini_val"),
        ("mini_train", "v1.0-mini", "mini_train"),
        ("mini_val", "v1.0-mini", "mini_val"),
        ("train", "v1.0-trainval", "train"),
        ("val", "v1.0-trainval", "val"),
        ("test", "v1.0-test", "test"),
        (None, "v1.0-mini", None),
    ],
)
def test_split_names_per_version(split, version, expected):
    assert split_for_version(split, version) == expected


@pytest.mark.parametrize(
    ("split", "version", "message"),
    [
        ("test", "v1.0-mini", "v1.0-mini has no test split"),
        ("mini_train", "v1.0-trainval", "belongs to v1.0-mini, not v1.0-trainval"),
        ("train", "v1.0-test", "belongs to v1.0-trainval, not v1.0-test"),
        ("training", "v1.0-mini", "unknown nuScenes split 'training'"),
    ],
)
def test_split_errors(split, version, message):
    with pytest.raises(ConfigError, match=message):
        split_for_version(split, version)
