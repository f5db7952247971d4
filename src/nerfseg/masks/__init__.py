"""Class-agnostic masks of camera images (DESIGN.md step 7).

- ``source``: the ``MaskSource`` interface (mask-id image, -1 = no mask, smallest mask wins on overlap);
- ``superpixel``: the built-in weight-free source (scikit-image Felzenszwalb / SLIC);
- ``sam``: Segment-Anything's automatic mask generator from a user-given checkpoint;
- ``convert``: boolean mask stacks -> mask-id images;
- ``cache``: the on-disk, content-keyed, atomic, resumable cache (``nerfseg masks`` fills it);
- ``config``: ``MasksConfig`` + ``build_mask_source`` / ``open_mask_cache``, and ``open_run_mask_cache``
  (the run config's cache, shared by training and ``nerfseg masks``);
- ``noisy_teacher`` / ``preview``: the stand-in teacher distribution of the benchmark and previews.
"""
