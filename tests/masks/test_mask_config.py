"""MasksConfig / FusionConfig / RaySamplerConfig: plain typed dataclasses the engine's YAML loader reads."""

import pytest
import yaml

from nerfseg.config import dataclass_from_dict
from nerfseg.errors import ConfigError
from nerfseg.masks.config import MasksConfig, build_mask_source, open_mask_cache
from nerfseg.masks.sam import SamMasks
from nerfseg.masks.superpixel import SuperpixelMasks
from nerfseg.ssl.fusion import FusionConfig
from nerfseg.ssl.ray_sampler import RaySamplerConfig

YAML = """
masks:
  source: sam
  sam: {checkpoint: /weights/sam_vit_b_01ec64.pth, model_type: vit_b, points_per_side: 16, device: cuda}
  superpixel: {method: slic, n_segments: 300}
  cache_dir: /scratch/masks
fusion: {tau_mask: 0.4, tau_pix: 0.95}
sampler: {budget: 2048, class_balanced: false}
"""


def test_yaml_loads_through_the_engine_loader(tmp_path):
    data = yaml.safe_load(YAML)
    masks = dataclass_from_dict(MasksConfig, data["masks"], "preset.yaml", "masks.")
    assert masks.sam.points_per_side == 16 and masks.sam.model_type == "vit_b"
    assert masks.superpixel.method == "slic" and masks.superpixel.n_segments == 300
    assert dataclass_from_dict(FusionConfig, data["fusion"]) == FusionConfig(0.4, 0.95)
    sampler = dataclass_from_dict(RaySamplerConfig, data["sampler"])
    assert sampler.budget == 2048 and not sampler.class_balanced and sampler.confidence_power == 1.0
    assert isinstance(build_mask_source(masks), SamMasks)
    cache = open_mask_cache(MasksConfig(), tmp_path)
    assert isinstance(cache.source, SuperpixelMasks)
    assert cache.folder.parent == tmp_path / ".nerfseg_cache" / "masks"
    other = open_mask_cache(MasksConfig(cache_dir=str(tmp_path / "c")), "/data")
    assert other.folder.parent == tmp_path / "c"


def test_unknown_source_and_unknown_key():
    with pytest.raises(ConfigError, match="masks.source"):
        MasksConfig(source="sam2")
    with pytest.raises(ConfigError, match="tau"):
        dataclass_from_dict(FusionConfig, {"tau": 0.3})


def test_run_cache_follows_the_run_config(tmp_path):
    from nerfseg.config import load_config
    from nerfseg.masks.config import open_run_mask_cache

    cfg = load_config(None, [f"data.root={tmp_path}"])
    cache = open_run_mask_cache(cfg)
    assert cache.folder.parent == tmp_path / ".nerfseg_cache" / "masks"
    assert cache.folder == open_mask_cache(MasksConfig(), tmp_path).folder
    moved = open_run_mask_cache(load_config(None, [f"data.root={tmp_path}", "masks.superpixel.sigma=1.5"]))
    assert moved.folder.parent == cache.folder.parent and moved.folder != cache.folder
    # --set bypasses the dataclass's own check; opening the cache still rejects an unknown source.
    with pytest.raises(ConfigError, match="masks.source"):
        open_run_mask_cache(load_config(None, ["masks.source=sam2"]))
