"""The one `nerfseg` command: every sub-command is reachable and its --help teaches."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nerfseg.cli import COMMANDS, build_parser, main

EXPECTED = {
    "simulate", "check-data", "parallax", "masks", "make-splits", "train", "export", "predict", "evaluate",
    "render", "view", "compare", "demo",
}  # fmt: skip


def _subcommand_names() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)


def test_every_subcommand_is_registered():
    assert _subcommand_names() == EXPECTED
    assert len(COMMANDS) == len(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_subcommand_help_has_usage_and_options(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: nerfseg {name}")
    assert "options:" in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_console_entry_point_runs_as_module():
    result = subprocess.run(
        [sys.executable, "-m", "nerfseg", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0
    for name in EXPECTED:
        assert name in result.stdout


def test_user_error_is_one_line_without_traceback(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    args = ["evaluate", "--dataset", "semantickitti", "--data", str(missing), "--predictions", str(missing)]
    code = main(args)
    assert code != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert str(missing) in err
