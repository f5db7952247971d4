"""nerfseg: semi-supervised LiDAR semantic segmentation taught through the cameras by a NeRF head."""

__version__ = "0.1.0"
