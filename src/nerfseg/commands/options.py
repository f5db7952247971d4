"""Command-line options shared by several sub-commands."""

from __future__ import annotations

import argparse


def add_set_option(parser: argparse.ArgumentParser, help: str, dest: str = "overrides") -> None:  # noqa: A002
    """The repeatable ``--set KEY=VALUE`` config override (collected in ``args.<dest>``, a list)."""
    parser.add_argument("--set", dest=dest, action="append", default=[], metavar="KEY=VALUE", help=help)
