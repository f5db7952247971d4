"""The ramp-up of the pseudo-label losses: the teacher's labels are near chance in the first steps, so the
terms built on them start at almost zero weight and reach full weight after ``rampup_steps`` optimiser steps.

The sigmoid-shaped ramp ``exp(-5 (1 - t)^2)``, ``t = min(step / rampup_steps, 1)``, is the one of
Laine & Aila (temporal ensembling, ICLR 2017) and Tarvainen & Valpola (mean teacher, NeurIPS 2017).
"""

from __future__ import annotations

import math


def pseudo_label_ramp(step: int, rampup_steps: int) -> float:
    """Weight in (0, 1] of the pseudo-label terms at optimiser step ``step`` (1-based).

    ``rampup_steps`` <= 0 disables the ramp (weight 1 from the first step). The weight rises monotonically
    from exp(-5) ~ 0.007 at step 0 to 1 at ``step >= rampup_steps``.
    """
    if rampup_steps <= 0:
        return 1.0
    t = min(max(step, 0) / rampup_steps, 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)
