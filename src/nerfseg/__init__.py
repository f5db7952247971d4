"""nerfseg: semi-supervised LiDAR semantic segmentation taught through the cameras by a NeRF head."""

__version__ = "0.1.0"

from nerfseg.threads import prefer_passive_wait_policy as _prefer_passive_wait_policy

_prefer_passive_wait_policy()  # before torch loads: libgomp reads OMP_WAIT_POLICY once (nerfseg/threads.py)
