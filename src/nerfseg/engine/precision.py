"""Inference precision: which dtype the segmentor runs in at prediction time, and the CPU instruction set
that decides whether bf16 pays (no torch import at module level, so the command line can offer the choices
without loading torch).

bf16 autocast is only worth running where the device multiplies bf16 matrices natively: x86 CPUs with
AVX512-BF16 or AMX-BF16, ARM CPUs with the BF16 extension, CUDA GPUs from Ampere on. Elsewhere bf16 is
emulated: on an AVX2-only host the ``full`` preset's bf16 inference took 103-145 s against 3.6-6.1 s in
float32 (issue 12). So a bf16 request on such a device falls back to float32 and says so once
(:func:`choose_precision`); it is never run emulated.
"""

from __future__ import annotations

import functools
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "float32", "bf16")
"""``auto`` = bf16 autocast on CUDA and float32 on the CPU; ``float32``; ``bf16`` = bf16 autocast on any
device with native bf16 matmuls (on CPUs with AVX512-BF16 or AMX the ``full`` preset runs about 1.7x faster
than in float32: benchmarks/bench_sparse.py; the narrow ``tiny`` preset does not gain), float32 elsewhere."""

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
"""/proc/cpuinfo flags that mean native bf16 matrix multiplies: x86 AVX512-BF16 and AMX-BF16 (``flags``), ARM
FEAT_BF16 (``Features``)."""


class PrecisionFallbackWarning(UserWarning):
    """bf16 was asked for on a device without native bf16; the work runs in float32 instead."""


@dataclass(frozen=True)
class CpuIsa:
    """The host CPU's instruction set, as far as speed depends on it.

    Attributes:
        model: CPU model name (``model name`` of /proc/cpuinfo), e.g. ``"AMD EPYC 9654"``.
        capability: torch's CPU kernel level (``torch.backends.cpu.get_cpu_capability()``): ``"AVX512"``,
            ``"AVX2"``, ``"DEFAULT"``, ``"SVE256"``, ...
        bf16_flags: the native-bf16 flags present (a subset of BF16_CPU_FLAGS); empty = bf16 is emulated.
    """

    model: str
    capability: str
    bf16_flags: tuple[str, ...] = ()

    @property
    def native_bf16(self) -> bool:
        """Whether bf16 matrix multiplies run natively (else emulated, slower than float32)."""
        return bool(self.bf16_flags)

    def describe(self) -> str:
        """One line for reports: ``"AVX512, native bf16 (avx512_bf16)"``, ``"AVX2, no native bf16"``."""
        bf16 = f"native bf16 ({', '.join(self.bf16_flags)})" if self.bf16_flags else "no native bf16"
        return f"{self.capability}, {bf16}"

    def as_dict(self) -> dict:
        """JSON-ready fields for a benchmark's machine record: cpu, isa, native_bf16, bf16_flags."""
        return {
            "cpu": self.model,
            "isa": self.capability,
            "native_bf16": self.native_bf16,
            "bf16_flags": list(self.bf16_flags),
        }


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """(model name, feature flags) of a /proc/cpuinfo text (the first processor's; x86 ``flags`` or ARM
    ``Features``). Missing fields give ``""`` and an empty set."""
    model, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
    return model, flags


def cpu_isa_from(capability: str, flags: frozenset[str] | set[str], model: str = "") -> CpuIsa:
    """CpuIsa of a CPU with torch kernel level ``capability`` and /proc/cpuinfo ``flags`` (pure)."""
    return CpuIsa(model or "unknown CPU", capability, tuple(f for f in BF16_CPU_FLAGS if f in flags))


@functools.cache
def cpu_isa() -> CpuIsa:
    """This host's CpuIsa: /proc/cpuinfo where there is one, else torch's own probes of AVX512-BF16 / AMX."""
    import torch

    capability = str(torch.backends.cpu.get_cpu_capability())
    try:
        model, flags = parse_cpuinfo(Path("/proc/cpuinfo").read_text(errors="replace"))
    except OSError:  # not Linux
        model, flags = "", frozenset()
        probes = {"avx512_bf16": "_is_avx512_bf16_supported", "amx_bf16": "_is_amx_tile_supported"}
        flags = frozenset(f for f, name in probes.items() if getattr(torch.cpu, name, lambda: False)())
    return cpu_isa_from(capability, flags, model or platform.processor())


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AVX512-BF16, AMX-BF16 or ARM BF16); without it bf16
    is emulated and much slower than float32."""
    return cpu_isa().native_bf16


def device_has_native_bf16(device: torch.device) -> bool:
    """Native bf16 matmuls on ``device``: the CPU's flags (cpu_has_native_bf16), or a CUDA GPU of compute
    capability 8.0 or more (Ampere on)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and cpu_has_native_bf16()


@dataclass(frozen=True)
class PrecisionChoice:
    """What inference runs in: ``bf16`` (autocast or not), the precision name to pass on, and a ``note`` to
    show the user once when the request was changed (None when it was not)."""

    bf16: bool
    precision: str
    note: str | None = None


def choose_precision(precision: str, device_type: str, native_bf16: bool, where: str = "") -> PrecisionChoice:
    """The precision inference runs in (pure: no probing).

    Args:
        precision: requested, one of PRECISIONS.
        device_type: ``"cpu"`` or ``"cuda"``.
        native_bf16: whether that device multiplies bf16 natively (device_has_native_bf16).
        where: the device's description for the note, e.g. ``CpuIsa.describe()``.
    Returns:
        ``auto``: bf16 on CUDA with native bf16, float32 otherwise (silently). ``float32``: float32.
        ``bf16``: bf16 where native, else float32 with a note saying so (never emulated bf16).
    Raises:
        ValueError for a precision not in PRECISIONS.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "float32":
        return PrecisionChoice(False, "float32")
    if precision == "auto":
        bf16 = device_type == "cuda" and native_bf16
        return PrecisionChoice(bf16, "bf16" if bf16 else "float32")
    if native_bf16:
        return PrecisionChoice(True, "bf16")
    what = "this CPU" if device_type == "cpu" else f"this {device_type} device"
    detail = f" ({where})" if where else ""
    note = (
        f"{what}{detail} has no native bf16 matrix multiply, so bf16 would be emulated (about 30x slower "
        "than float32 on an AVX2-only CPU); running in float32 instead"
    )
    return PrecisionChoice(False, "float32", note)


def resolve_precision(precision: str, device: torch.device) -> PrecisionChoice:
    """choose_precision for ``device`` with its native-bf16 support probed (the CPU named in the note)."""
    isa = cpu_isa()
    where = f"{isa.model}, {isa.capability}" if device.type == "cpu" else ""
    return choose_precision(precision, device.type, device_has_native_bf16(device), where)


def inference_uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether inference at ``precision`` (one of PRECISIONS) runs under bf16 autocast on ``device``; a bf16
    request on a device without native bf16 runs in float32 and issues a PrecisionFallbackWarning."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "float32":  # no probing needed (and no CUDA initialisation)
        return False
    choice = resolve_precision(precision, device)
    if choice.note:
        warnings.warn(choice.note, PrecisionFallbackWarning, stacklevel=2)
    return choice.bf16
