"""Inference precision: the CPU's ISA from /proc/cpuinfo, and bf16 falling back to float32 where it would be
emulated (a pure decision of the request, the device and its native-bf16 support)."""

import platform
import warnings

import pytest
import torch

import nerfseg.engine.precision as precision
from nerfseg.engine.precision import (
    PRECISIONS,
    PrecisionFallbackWarning,
    choose_precision,
    cpu_isa,
    cpu_isa_from,
    inference_uses_bf16,
    parse_cpuinfo,
)

# Abridged /proc/cpuinfo of the three kinds of host seen: AVX2 only (issue 12's slow host), AVX512 with
# AVX512-BF16 (the README's figures), and an ARM server with FEAT_BF16.
AVX2_ONLY = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2
processor\t: 1
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse sse2 avx avx2 avx512_bf16
"""
AVX512_BF16 = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu avx avx2 avx512f avx512bw avx512vl avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""
ARM_BF16 = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics sve bf16 i8mm
CPU implementer\t: 0x41
"""


def test_parse_cpuinfo_reads_the_first_processor():
    model, flags = parse_cpuinfo(AVX2_ONLY)
    assert model == "AMD EPYC 7B12" and "avx2" in flags and "avx512_bf16" not in flags  # not processor 1's
    arm_flags = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics sve bf16 i8mm".split()
    assert parse_cpuinfo(ARM_BF16) == ("", frozenset(arm_flags))
    assert parse_cpuinfo("") == ("", frozenset())


@pytest.mark.parametrize(
    "text, capability, expected_flags, describe",
    [
        (AVX2_ONLY, "AVX2", (), "AVX2, no native bf16"),
        (AVX512_BF16, "AVX512", ("avx512_bf16", "amx_bf16"), "AVX512, native bf16 (avx512_bf16, amx_bf16)"),
        (ARM_BF16, "SVE256", ("bf16",), "SVE256, native bf16 (bf16)"),
    ],
)
def test_isa_of_fake_hosts(text, capability, expected_flags, describe):
    model, flags = parse_cpuinfo(text)
    isa = cpu_isa_from(capability, flags, model)
    assert isa.bf16_flags == expected_flags and isa.native_bf16 == bool(expected_flags)
    assert isa.describe() == describe
    record = isa.as_dict()
    assert record["isa"] == capability and record["native_bf16"] == bool(expected_flags)
    assert record["cpu"] == (model or "unknown CPU")


def test_this_host_agrees_with_torchs_own_probe():
    """The flags read from /proc/cpuinfo against torch's CPUID probe (an independent reading)."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("x86 Linux only")
    isa = cpu_isa()
    assert ("avx512_bf16" in isa.bf16_flags) == torch.cpu._is_avx512_bf16_supported()
    assert isa.capability == torch.backends.cpu.get_cpu_capability()


# (requested, device, native) -> (bf16, precision passed on, note?)
DECISIONS = [
    ("float32", "cpu", True, (False, "float32", False)),
    ("float32", "cuda", True, (False, "float32", False)),
    ("auto", "cpu", True, (False, "float32", False)),
    ("auto", "cpu", False, (False, "float32", False)),
    ("auto", "cuda", True, (True, "bf16", False)),
    ("auto", "cuda", False, (False, "float32", False)),  # pre-Ampere GPU: silently float32
    ("bf16", "cpu", True, (True, "bf16", False)),
    ("bf16", "cpu", False, (False, "float32", True)),  # AVX2-only host: float32, said once
    ("bf16", "cuda", True, (True, "bf16", False)),
    ("bf16", "cuda", False, (False, "float32", True)),
]


@pytest.mark.parametrize("requested, device, native, expected", DECISIONS)
def test_choose_precision(requested, device, native, expected):
    choice = choose_precision(requested, device, native, where="AMD EPYC 7B12, AVX2")
    assert (choice.bf16, choice.precision, choice.note is not None) == expected
    if choice.note:
        assert "no native bf16" in choice.note and "float32" in choice.note
        assert device != "cpu" or "AMD EPYC 7B12, AVX2" in choice.note
    # the precision passed on is a fixed point: choosing again from it changes nothing and says nothing
    again = choose_precision(choice.precision, device, native)
    assert (again.bf16, again.precision, again.note) == (choice.bf16, choice.precision, None)


def test_every_precision_is_decided_and_others_rejected():
    assert {choose_precision(p, "cpu", False).precision for p in PRECISIONS} == {"float32"}
    with pytest.raises(ValueError, match="precision must be one of"):
        choose_precision("fp8", "cpu", True)
    with pytest.raises(ValueError, match="precision must be one of"):
        inference_uses_bf16("fp8", torch.device("cpu"))


@pytest.mark.parametrize("native", [True, False])
def test_inference_uses_bf16_on_the_cpu_follows_the_isa(monkeypatch, native):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert inference_uses_bf16("bf16", cpu) == native
        assert not inference_uses_bf16("auto", cpu) and not inference_uses_bf16("float32", cpu)
    fallbacks = [w for w in caught if issubclass(w.category, PrecisionFallbackWarning)]
    assert len(fallbacks) == (0 if native else 1)
