"""The mean teacher: an exponential moving average (EMA) of the student's segmentor and NeRF head.

After every optimiser step: ``theta_t <- d * theta_t + (1 - d) * theta_s`` with ``d = ema_decay`` (or, with
``ema_warmup``, ``min(ema_decay, (1 + step) / (10 + step))``: the usual ramp, so the first teacher is not
stuck on the random initial weights). The teacher remembers about ``1 / (1 - d)`` steps: 0.99 over the
synthetic runs' 400-1000 steps, 0.999 over the real datasets' 10^4-10^5 steps.

BatchNorm buffers: the teacher always runs in eval mode, so its running statistics are what normalises its
activations. With ``buffers: ema`` (default) they are averaged with the same decay as the weights, so they
describe the activations of the averaged weights; ``copy`` takes the student's latest statistics (which
describe the student, not the teacher). ``num_batches_tracked`` is copied in both cases. The teacher gets
no gradients and is never in train mode.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from nerfseg.errors import ConfigError
from nerfseg.ssl.config import TeacherConfig


class MeanTeacher(nn.Module):
    """EMA copies of the student's modules (e.g. ``{"model": segmentor, "head": nerf_head}``).

    ``teacher.modules_by_name["model"]`` is the teacher segmentor (eval mode, no gradients).
    """

    def __init__(self, students: dict[str, nn.Module], cfg: TeacherConfig):
        super().__init__()
        if cfg.buffers not in ("ema", "copy"):
            raise ConfigError(f"ssl.teacher.buffers must be 'ema' or 'copy', got {cfg.buffers!r}")
        if not 0.0 <= cfg.ema_decay < 1.0:
            raise ConfigError(f"ssl.teacher.ema_decay must be in [0, 1), got {cfg.ema_decay}")
        self.cfg = cfg
        # One deep copy of all modules together: references between them (the head's point classifier is
        # the segmentor's) point to the copies, not to the student.
        self.copies = nn.ModuleDict(copy.deepcopy(dict(students)))
        for p in self.copies.parameters():
            p.requires_grad_(False)
        self.train(False)

    def __getitem__(self, name: str) -> nn.Module:
        return self.copies[name]

    def train(self, mode: bool = True) -> MeanTeacher:  # noqa: ARG002 - the teacher stays in eval mode
        return super().train(False)

    def decay_at(self, step: int) -> float:
        """The EMA decay used for the update after optimiser step ``step`` (1-based)."""
        if self.cfg.ema_warmup:
            return min(self.cfg.ema_decay, (1.0 + step) / (10.0 + step))
        return self.cfg.ema_decay

    @torch.no_grad()
    def update(self, students: dict[str, nn.Module], step: int) -> float:
        """Move every teacher parameter (and float buffer, with ``buffers: ema``) towards the student's;
        returns the decay used."""
        decay = self.decay_at(step)
        for name, student in students.items():
            teacher = self.copies[name]
            for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
                t.lerp_(s.detach(), 1.0 - decay)
            for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
                if self.cfg.buffers == "ema" and t.is_floating_point():
                    t.lerp_(s.detach(), 1.0 - decay)
                else:
                    t.copy_(s)
        return decay
