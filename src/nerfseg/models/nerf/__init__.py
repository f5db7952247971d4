"""The auxiliary NeRF head (training only): sampler -> field -> renderer, and the LiDAR-ray losses."""

from nerfseg.models.nerf.head import NerfConfig, NerfHead, RenderOutput
from nerfseg.models.nerf.losses import lidar_ray_losses

__all__ = ["NerfConfig", "NerfHead", "RenderOutput", "lidar_ray_losses"]
