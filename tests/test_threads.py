"""nerfseg.threads: the OpenMP wait policy set before torch loads, and the scoped single thread."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from nerfseg.threads import single_thread

_REPORT = (
    "import json, os; import nerfseg.threads as t; "
    "print(json.dumps({'env': os.environ.get('OMP_WAIT_POLICY'), 'policy': t.wait_policy(), "
    "'passive': t.prefer_passive_wait_policy(), 'loaded': t.openmp_runtime_loaded()}))"
)


def _child(code: str, **extra_env: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | extra_env
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_importing_nerfseg_before_torch_sets_passive_before_libgomp_loads():
    # nerfseg alone loads no OpenMP runtime; the variable is in place when torch's libgomp loads
    before_torch = _child(
        "import json, os, nerfseg, nerfseg.threads as t; "
        "print(json.dumps({'env': os.environ.get('OMP_WAIT_POLICY'), 'loaded': t.openmp_runtime_loaded()}))"
    )
    assert before_torch == {"env": "PASSIVE", "loaded": False}
    after = _child("import nerfseg, torch; torch.ones(1); " + _REPORT)
    assert after["loaded"] is True
    assert after["env"] == "PASSIVE" and after["passive"] is True
    assert after["policy"] == "PASSIVE (set by nerfseg before torch loaded)"


def test_torch_first_is_reported_as_spinning():
    result = _child("import torch; import nerfseg; " + _REPORT)
    assert result["passive"] is False
    assert result["policy"].startswith("unset when torch loaded")


def test_a_user_value_is_kept():
    result = _child("import nerfseg; " + _REPORT, OMP_WAIT_POLICY="active")
    assert result["env"] == "active" and result["passive"] is False
    assert result["policy"] == "ACTIVE (environment)"
    assert _child("import nerfseg; " + _REPORT, OMP_WAIT_POLICY="PASSIVE")["passive"] is True


def test_single_thread_scopes_and_restores_even_on_error():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with single_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), single_thread():
            raise RuntimeError("inside")
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        with single_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_torch_imported_first_with_the_variable_unset_warns_once_with_the_fixes():
    code = "import torch, warnings, nerfseg; print('{}')"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("RuntimeWarning") == 1
    assert "Import nerfseg before torch, or set OMP_WAIT_POLICY=PASSIVE" in done.stderr
    for quiet_env in (env | {"OMP_WAIT_POLICY": "ACTIVE"}, env):  # a user value; nerfseg imported first
        quiet_code = code if "OMP_WAIT_POLICY" in quiet_env else "import nerfseg, torch; print('{}')"
        quiet = subprocess.run(
            [sys.executable, "-c", quiet_code], env=quiet_env, capture_output=True, text=True, timeout=120
        )
        assert quiet.returncode == 0 and "RuntimeWarning" not in quiet.stderr, quiet.stderr
