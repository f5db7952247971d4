"""nerfseg: semi-supervised LiDAR semantic segmentation taught through the cameras by a NeRF head."""

__version__ = "0.1.0"

from nerfseg import threads as _threads

# Before torch loads: libgomp reads OMP_WAIT_POLICY once (nerfseg/threads.py). A process that imported torch
# first with the variable unset keeps spinning OpenMP threads: say so once, with the two fixes.
_threads.prefer_passive_wait_policy()
if _threads.torch_loaded_first():
    import warnings as _warnings

    _warnings.warn(
        "torch was imported before nerfseg with OMP_WAIT_POLICY unset, so its OpenMP threads spin while they "
        "wait; on a CPU shared with other processes that makes multi-threaded runs many times slower "
        "(benchmarks/README.md). Import nerfseg before torch, or set OMP_WAIT_POLICY=PASSIVE.",
        RuntimeWarning,
        stacklevel=2,
    )
