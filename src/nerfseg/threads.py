"""OpenMP thread behaviour of the process: the wait policy and a scoped single-thread section.

torch's CPU ops run on GNU OpenMP (libgomp). Unless ``OMP_WAIT_POLICY`` says otherwise, a libgomp thread
that finishes its share of a parallel op spins, burning its core, while it waits for the next op or for
the other threads at the barrier. On a machine whose cores are shared with other processes a spinning
thread uses up its time slice, the scheduler puts it behind the other runnable processes, and every
parallel op then waits for it: measured on a shared 2-core host at load 7-9, a 3x3x3 submanifold kernel
map of 84k voxels took 1.2-2.1 s on 2 threads against 40 ms on 1, and ``full``-preset inference 40-89 s
against 8-10 s (benchmarks/README.md). With ``OMP_WAIT_POLICY=PASSIVE`` waiting threads sleep and the
2-thread times fall back to the 1-thread ones.

libgomp reads the variable once, when it is loaded (the first ``import torch`` of the process), so
:func:`prefer_passive_wait_policy` runs from ``nerfseg/__init__`` before anything imports torch: the
``nerfseg`` command, ``python -m nerfseg`` and any script that imports nerfseg before torch get the
passive policy; a value the user set is kept. A process that loaded torch first keeps spinning threads;
:func:`single_thread` protects the phases made of many small ops (kernel maps) either way.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

WAIT_POLICY_VARIABLE = "OMP_WAIT_POLICY"
_OPENMP_LIBRARIES = ("libgomp", "libiomp", "libomp")


def openmp_runtime_loaded() -> bool | None:
    """Whether an OpenMP runtime (libgomp / libiomp / libomp) is mapped into this process already.

    Read from ``/proc/self/maps`` (Linux); elsewhere None, or True once torch is imported."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            text = maps.read()
    except OSError:
        return True if "torch" in sys.modules else None
    return any(name in text for name in _OPENMP_LIBRARIES)


_SET_BEFORE_RUNTIME: bool | None = None
"""Whether :func:`prefer_passive_wait_policy` set the variable before the OpenMP runtime was loaded (None:
not called yet, or the user set the variable)."""


def prefer_passive_wait_policy() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` for this process and its children unless it is set already.

    Returns whether this process's OpenMP threads sleep while they wait: True when the variable reads
    PASSIVE and was in place before the runtime loaded (set by the user, or here before torch was
    imported), False otherwise (a user value such as ACTIVE is kept; a runtime loaded before this call has
    read the old value, though child processes started later read the new one)."""
    global _SET_BEFORE_RUNTIME
    if WAIT_POLICY_VARIABLE not in os.environ:
        _SET_BEFORE_RUNTIME = openmp_runtime_loaded() is False
        os.environ[WAIT_POLICY_VARIABLE] = "PASSIVE"
    passive = os.environ[WAIT_POLICY_VARIABLE].strip().upper() == "PASSIVE"
    return passive and _SET_BEFORE_RUNTIME is not False


def torch_loaded_first() -> bool:
    """True when :func:`prefer_passive_wait_policy` found the variable unset and the OpenMP runtime already
    loaded (torch imported before nerfseg): this process's threads spin while they wait."""
    return _SET_BEFORE_RUNTIME is False


def wait_policy() -> str:
    """This process's OpenMP wait policy, in words: ``PASSIVE (set by nerfseg before torch loaded)``,
    ``PASSIVE (environment)``, ``ACTIVE (environment)``, ``unset: threads spin ...`` and so on."""
    value = os.environ.get(WAIT_POLICY_VARIABLE)
    if _SET_BEFORE_RUNTIME is True:
        return "PASSIVE (set by nerfseg before torch loaded)"
    if _SET_BEFORE_RUNTIME is False:
        return "unset when torch loaded: threads spin while waiting (nerfseg imported after torch)"
    if value is None:
        return "unset: threads spin while waiting"
    return f"{value.strip().upper()} (environment)"


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run the enclosed torch CPU ops on one intra-op thread; the previous thread count is restored.

    For phases made of many small ops (tens of ops on ~1e5 elements), where a second thread saves
    little and, with spinning OpenMP threads on a shared machine, costs 10-50x. The setting is
    process-wide: another Python thread running torch ops meanwhile also runs on one thread."""
    import torch

    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
