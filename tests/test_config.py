"""Typed configs: YAML presets, --set overrides coerced to the field type, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from nerfseg.config import (
    Config,
    apply_override,
    config_from_dict,
    config_to_yaml,
    dataclass_to_dict,
    load_config,
)
from nerfseg.errors import ConfigError
from nerfseg.ssl.config import Method

PRESETS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))


def test_presets_exist_and_load():
    names = {p.parent.name for p in PRESETS}
    assert {"synthetic", "semantickitti", "scribblekitti", "nuscenes"} <= names
    for path in PRESETS:
        cfg = load_config(path)
        assert isinstance(cfg, Config)
        assert cfg.train.max_steps >= 1


def test_yaml_values_and_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  root: /x\n  label_fraction: 0.1\ntrain:\n  max_steps: 7\n  lr: 1\n")
    cfg = load_config(path)
    assert cfg.data.root == "/x" and cfg.data.label_fraction == 0.1
    assert cfg.train.max_steps == 7 and cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.train.seed == Config().train.seed  # absent keys keep defaults


def test_overrides_are_coerced_to_the_field_type(tmp_path):
    cfg = load_config(
        None,
        [
            "train.lr=0.002",
            "train.max_steps=12",
            "train.seed=3",
            "data.root=123",  # a string field keeps the text
            "train.deterministic=false",
            "method=geometry",
            "augment.rotate_z=0",
        ],
    )
    assert cfg.train.lr == 0.002 and cfg.train.max_steps == 12 and cfg.train.seed == 3
    assert cfg.data.root == "123" and cfg.train.deterministic is False and cfg.method.value == 'geometry'
    assert cfg.augment.rotate_z == 0.0 and isinstance(cfg.augment.rotate_z, float)


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("train.nope=1", "unknown key 'train.nope'"),
        ("nope.x=1", "unknown key 'nope.x'"),
        ("train.max_steps=1.5", "train.max_steps must be an integer"),
        ("train.max_steps=abc", "train.max_steps must be an integer"),
        ("train.deterministic=maybe", "train.deterministic must be true or false"),
        ("train.lr", "not of the form key=value"),
        ("train.lr.x=1", "unknown key 'train.lr.x'"),
        (
            "ssl.camera.points.min_teacher_confidence=1.5",
            "ssl.camera.points.min_teacher_confidence must be in",
        ),
        ("ssl.camera.appearance.crop_width=250", "ssl.camera.appearance.crop_height / crop_width must be"),
        ("ssl.camera.appearance.steps=0", "ssl.camera.appearance.steps / views_per_step"),
        ("ssl.camera.veto.min_confidence=-0.1", "ssl.camera.veto.min_confidence must be in"),
        ("ssl.camera.veto.depth_tolerance=-1", "ssl.camera.veto.depth_tolerance must be >= 0"),
    ],
)
def test_bad_overrides(assignment, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(None, [assignment])


def test_the_appearance_gate_needs_a_stride_the_net_labels():
    assert load_config(None, ["ssl.camera.stride=8", "ssl.camera.appearance.enabled=true"])
    assert load_config(None, ["ssl.camera.stride=6"])  # no gate, any stride
    with pytest.raises(ConfigError, match=r"ssl\.camera\.stride must be a multiple of 4"):
        load_config(None, ["ssl.camera.stride=6", "ssl.camera.appearance.enabled=true"])


def test_unknown_key_in_file_names_key_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  max_stepz: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and "train.max_stepz" in str(err.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "broken.yaml")
    (tmp_path / "wrong.yaml").write_text("train: 3\n")
    with pytest.raises(ConfigError, match="train must be a mapping"):
        load_config(tmp_path / "wrong.yaml")
    (tmp_path / "range.yaml").write_text("data:\n  label_fraction: 0\n")
    with pytest.raises(ConfigError, match="data.label_fraction"):
        load_config(tmp_path / "range.yaml")


def test_yaml_round_trip_and_plain_dict(tmp_path):
    cfg = load_config(PRESETS[0], ["train.seed=9", "data.label_fraction=0.5"])
    (tmp_path / "resolved.yaml").write_text(config_to_yaml(cfg))
    again = load_config(tmp_path / "resolved.yaml")
    assert again == cfg
    assert config_from_dict(dataclass_to_dict(cfg)) == cfg


def test_apply_override_sets_nested_segmentor_field():
    cfg = Config()
    apply_override(cfg, "model.segmentor.voxel_size=0.25")
    assert cfg.model.segmentor.voxel_size == 0.25


def test_base_presets_merge_section_by_section(tmp_path):
    root = Path(__file__).resolve().parents[1] / "configs"
    derived = load_config(root / "nuscenes" / "supervised_10pct.yaml")
    base = load_config(root / "nuscenes" / "supervised.yaml")
    assert derived.data.label_fraction == 0.1
    derived.data.label_fraction = base.data.label_fraction
    assert derived == base
    (tmp_path / "a.yaml").write_text("base: b.yaml\ntrain:\n  seed: 1\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: missing.yaml\n")
    with pytest.raises(ConfigError, match="missing.yaml: config file not found"):
        load_config(tmp_path / "c.yaml")


def test_every_preset_loads_and_names_existing_split_files():
    repo = Path(__file__).resolve().parents[1]
    presets = sorted((repo / "configs").rglob("*.yaml"))
    assert len(presets) >= 3 * 8 * 5
    methods = set()
    for preset in presets:
        cfg = load_config(preset)
        methods.add((preset.parent.name, cfg.method.value))
        if cfg.data.labeled_split:
            assert (repo / cfg.data.labeled_split).is_file(), preset
    for dataset in ("semantickitti", "scribblekitti", "nuscenes", "synthetic"):
        assert {m for d, m in methods if d == dataset} == {m.value for m in Method}, dataset
