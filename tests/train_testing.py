"""Shared settings of the training tests."""

TINY_SEGMENTOR_OVERRIDES = [
    "model.segmentor.preset=tiny",
    "model.segmentor.voxel_size=0.3",
    "model.segmentor.stem_channels=8",
    "model.segmentor.encoder_channels=[16,16]",
    "model.segmentor.decoder_channels=[16,16]",
    "model.segmentor.encoder_depths=[1,1]",
    "model.segmentor.decoder_depths=[1,1]",
    "model.segmentor.point_hidden=16",
]
"""`--set` keys that shrink the segmentor to a two-level, 8-16 channel U-Net for fast tests."""
