"""The SAM mask source run for real: a tiny random-weight SAM built from segment_anything's own classes,
saved as a checkpoint and loaded through the same code path as a real one."""

import numpy as np
import pytest
import torch
from masks_testing import TINY_BUILDERS, scene_image

from nerfseg.errors import ConfigError, DataError
from nerfseg.masks.convert import compact_ids
from nerfseg.masks.sam import SamConfig, SamMasks, load_sam_model

FAST = {"points_per_side": 3, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


def _smallest_wins_reference(records, shape):
    ids = np.full(shape, -1)
    order = sorted(range(len(records)), key=lambda i: (-int(records[i]["segmentation"].sum()), -i))
    for i in order:  # paint largest first, so the smallest mask ends on top
        ids[records[i]["segmentation"]] = i
    return compact_ids(ids)


@pytest.mark.parametrize("shape", [(64, 64), (40, 64)])
def test_tiny_sam_checkpoint_through_the_real_code_path(tiny_sam_checkpoint, shape):
    from segment_anything import SamAutomaticMaskGenerator

    model, path = tiny_sam_checkpoint
    image = scene_image(*shape)
    source = SamMasks(SamConfig(checkpoint=str(path), model_type="tiny", **FAST), builders=TINY_BUILDERS)
    ids = source.masks(image)
    # Reference: the library's generator on the very model that was saved (our loader builds a fresh,
    # differently initialised model, so equality also proves the weights came from the checkpoint).
    records = SamAutomaticMaskGenerator(model, **SamConfig(**FAST).generator_kwargs()).generate(image)
    assert len(records) > 0
    assert ids.shape == shape and ids.dtype == np.int32
    assert np.array_equal(ids, _smallest_wins_reference(records, shape))
    assert np.array_equal(SamMasks.from_model(model, SamConfig(**FAST)).masks(image), ids)


def test_loaded_weights_equal_checkpoint(tiny_sam_checkpoint):
    model, path = tiny_sam_checkpoint
    loaded = load_sam_model("tiny", path, "cpu", TINY_BUILDERS)
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    assert not loaded.training


def test_missing_checkpoint_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "sam_vit_h.pth"
    source = SamMasks(SamConfig(checkpoint=str(missing), model_type="tiny", **FAST), builders=TINY_BUILDERS)
    with pytest.raises(DataError, match="sam_vit_h.pth.*not found"):
        source.masks(scene_image())
    with pytest.raises(DataError, match="not found"):
        source.cache_key()
    with pytest.raises(ConfigError, match="masks.sam.checkpoint"):
        load_sam_model("tiny", "", "cpu", TINY_BUILDERS)


def test_checkpoint_of_another_model_type_names_both(tiny_sam_checkpoint):
    _, path = tiny_sam_checkpoint
    with pytest.raises(DataError, match=r"sam_tiny\.pth.*does not match SAM model type 'tiny_wide'"):
        load_sam_model("tiny_wide", path, "cpu", TINY_BUILDERS)
    # The official builders (shapes checked on the meta device: nothing is allocated or initialised).
    with pytest.raises(DataError, match=r"sam_tiny\.pth.*'vit_b'.*image_encoder"):
        load_sam_model("vit_b", path)


def test_official_model_type_hint(tmp_path):
    # A vit_l-shaped encoder weight loaded as vit_b: the message says what it looks like.
    path = tmp_path / "fake_vit_l.pth"
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(1024, 3, 1, 1)}, path)
    with pytest.raises(DataError, match="looks like vit_l"):
        load_sam_model("vit_b", path)


def test_unreadable_checkpoint_and_unknown_type(tmp_path):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(DataError, match="broken.pth.*not a readable"):
        load_sam_model("vit_b", bad)
    with pytest.raises(ConfigError, match="vit_x"):
        load_sam_model("vit_x", bad)
    with pytest.raises(ConfigError, match="points_per_side"):
        SamConfig(points_per_side=0)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        SamConfig(pred_iou_thresh=1.5)


def test_cache_key_tracks_settings(tiny_sam_checkpoint):
    _, path = tiny_sam_checkpoint
    a = SamMasks(SamConfig(checkpoint=str(path), model_type="tiny", points_per_side=3)).cache_key()
    b = SamMasks(SamConfig(checkpoint=str(path), model_type="tiny", points_per_side=4)).cache_key()
    c = SamMasks(SamConfig(checkpoint=str(path), model_type="vit_b", points_per_side=3)).cache_key()
    assert len({a, b, c}) == 3 and "sam_tiny.pth" in a


@pytest.mark.parametrize(
    "content, problem",
    [
        ("list", "not a SAM state dict (expected a mapping of parameter names to tensors, found list)"),
        ("empty", "not a SAM state dict (expected a mapping of parameter names to tensors, found an empty"),
        ("mixed", "not a SAM state dict: 1 of its 2 entries are not tensors (first: 'step')"),
        ("other-model", "not a SAM checkpoint: none of its 2 tensors is a parameter of SAM 'tiny'"),
    ],
)
def test_files_that_are_not_sam_state_dicts(tmp_path, content, problem):
    path = tmp_path / "weights.pth"
    payload = {
        "list": [torch.zeros(2)],
        "empty": {},
        "mixed": {"image_encoder.pos_embed": torch.zeros(1), "step": 3},
        "other-model": {"backbone.weight": torch.zeros(2), "head.bias": torch.zeros(1)},
    }[content]
    torch.save(payload, path)
    with pytest.raises(DataError) as err:
        load_sam_model("tiny", path, "cpu", TINY_BUILDERS)
    assert str(err.value).startswith(f"{path}: {problem}"), str(err.value)


def test_garbage_checkpoint_message_is_ours(tmp_path):
    bad = tmp_path / "sam_vit_b.pth"
    bad.write_bytes(b"\x80\x02 definitely not torch" * 8)
    with pytest.raises(DataError) as err:
        load_sam_model("vit_b", bad)
    message = str(err.value)
    expected = f"{bad}: not a readable SAM checkpoint: the file is corrupt or not a PyTorch file"
    assert message.startswith(expected), message
    assert "weights_only" not in message


def test_a_bad_checkpoint_is_loaded_once_then_the_same_error_is_raised(tmp_path, monkeypatch):
    """prepare() reports the problem up front; later images do not reload the file."""
    import nerfseg.masks.sam as sam

    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"garbage")
    reads = []
    real_read = sam.read_sam_state_dict
    monkeypatch.setattr(sam, "read_sam_state_dict", lambda path: reads.append(path) or real_read(path))
    source = SamMasks(SamConfig(checkpoint=str(bad), model_type="tiny", **FAST), builders=TINY_BUILDERS)
    with pytest.raises(DataError, match="broken.pth: not a readable SAM checkpoint") as first:
        source.prepare()
    for _ in range(3):
        with pytest.raises(DataError) as again:
            source.masks(scene_image())
        assert again.value is first.value
    assert len(reads) == 1


def test_prepare_loads_a_good_checkpoint(tiny_sam_checkpoint):
    model, path = tiny_sam_checkpoint
    source = SamMasks(SamConfig(checkpoint=str(path), model_type="tiny", **FAST), builders=TINY_BUILDERS)
    source.prepare()
    loaded = source.generator().predictor.model
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


def test_settings_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"^points_per_batch must be >= 1, got 0$"):
        SamConfig(points_per_batch=0)
    cfg = SamConfig()
    cfg.box_nms_thresh = 1.5  # as a --set override leaves it: the dataclass check has run before
    with pytest.raises(ConfigError, match=r"^masks\.sam\.box_nms_thresh must be in \[0, 1\], got 1.5$"):
        cfg.validate("masks.sam.")
