"""``advwsl --help`` and every command's ``--help`` answer at once: the command line imports neither torch
nor the library's heavy modules before a command runs (its options come from the torch-free configs of
:mod:`advwsl.config`)."""

from __future__ import annotations

import subprocess
import sys
import time

import click

from advwsl.cli import main

HEAVY = ("torch", "numpy", "pandas", "matplotlib", "timm", "foolbox")


def _commands(group: click.Group = main, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix]
    for name, cmd in sorted(group.commands.items()):
        out += _commands(cmd, (*prefix, name)) if isinstance(cmd, click.Group) else [(*prefix, name)]
    return out


def _run(code: str) -> tuple[float, str]:
    tic = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return time.perf_counter() - tic, out.stdout


def test_help_imports_nothing_heavy():
    """Every command's --help, in one fresh interpreter: no heavy module gets imported."""
    calls = "".join(f"\ntry:\n    main({list(c) + ['--help']!r})\nexcept SystemExit:\n    pass" for c in _commands())
    _, stdout = _run("import sys\nfrom advwsl.cli import main" + calls +
                     f"\nprint('LOADED', [m for m in {HEAVY!r} if m in sys.modules])")
    assert stdout.strip().splitlines()[-1] == "LOADED []"


def test_help_costs_about_an_interpreter_start():
    """Wall time of ``advwsl attack --help`` against ``python -c pass`` (best of 3 each, interleaved): a small
    multiple of starting Python, far below the seconds an import of torch takes."""
    base, help_ = [], []
    for _ in range(3):
        base.append(_run("pass")[0])
        help_.append(_run("from advwsl.cli import main\ntry:\n    main(['attack', '--help'])\nexcept SystemExit:\n"
                          "    pass")[0])
    torch_import = _run("import torch")[0]
    assert min(help_) < min(base) + 0.5 * (torch_import - min(base)), (min(help_), min(base), torch_import)
