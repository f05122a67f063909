"""What ``advwsl train`` and ``advwsl adv-train`` share: opening a training run directory (rank 0 creates
it, every rank of a ``torchrun`` job gets its path) and reading back the run ``--resume`` names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch.distributed as dist

from ..errors import ConfigError
from ..io import read_json
from ..runs import check_out, create_run_dir

__all__ = ["resumed_record", "open_run", "same_value", "RESUMABLE"]

#: Options a resumed run may change (they do not change its result).
RESUMABLE = ("device", "num_workers", "progress")


def resumed_record(resume: str | Path, command: str) -> tuple[Path, dict[str, Any]]:
    """The run directory ``--resume`` names and the configuration its ``config.json`` records, refused when
    the folder is not an interrupted run of ``advwsl COMMAND``."""
    run_dir = Path(resume)
    if not run_dir.is_dir() or not (run_dir / "config.json").is_file():
        raise ConfigError(f"{run_dir} is not an `advwsl {command}` run directory (no config.json); --resume takes "
                          f"the folder of an interrupted `advwsl {command}` run")
    saved = read_json(run_dir / "config.json", what="run configuration")
    run = saved.get("run") if isinstance(saved, dict) else None
    stored = saved.get("config") if isinstance(saved, dict) else None
    wrote = run.get("command") if isinstance(run, dict) else None
    if wrote != command or not isinstance(stored, dict):
        raise ConfigError(f"{run_dir} is not an `advwsl {command}` run (its config.json was written by "
                          f"{f'advwsl {wrote}' if wrote else 'something else'}); --resume takes the folder of an "
                          f"interrupted `advwsl {command}` run")
    return run_dir, stored


def open_run(command: str, out: str | None, record: dict[str, Any], *, rank: int, world: int) -> Path:
    """Create the run directory of a new training run on rank 0 (``out``, checked first) and give its path
    to every rank; under ``torchrun`` every process must write to the same ``--out``."""
    if world > 1 and out is None:
        raise ConfigError("under torchrun every process must write to the same run directory: pass --out DIR")
    run_dir = None
    if rank == 0:
        check_out(out, command=command)
        run_dir = create_run_dir(command, out, config=record)
    if world > 1:
        holder = [str(run_dir) if run_dir is not None else None]
        dist.broadcast_object_list(holder, src=0)
        run_dir = Path(holder[0])
    return run_dir


def same_value(recorded: Any, asked: Any) -> bool:
    """Whether an option asked for equals the one a run recorded in JSON (tuples and lists alike)."""
    return json.dumps(recorded, sort_keys=True, default=str) == json.dumps(asked, sort_keys=True, default=str)


def check_tensorboard() -> None:
    """Refuse ``--tensorboard`` before any work when the ``tensorboard`` package is missing."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError("--tensorboard writes TensorBoard event files with the tensorboard package; install it "
                          "with pip install 'advwsl[tensorboard]'") from None


class TensorBoardLog:
    """The ``on_epoch_end`` hook of :func:`advwsl.training.fit` behind ``--tensorboard``: every epoch's scalars
    (``train_*``, ``valid_*``, learning rate, adversarial statistics) as TensorBoard events in
    ``run_dir/tensorboard`` (``fold_<k>`` per validation fold), written by rank 0 only."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir, self.writer, self.fold, self.last = Path(run_dir), None, -1, float("inf")

    def __call__(self, epoch: int, row: dict[str, float]) -> None:
        from ..utils import is_main_process

        if not is_main_process():
            return None
        if epoch <= self.last:  # a new fold starts at epoch 1 (or a resumed run at its next epoch)
            self.close()
            from torch.utils.tensorboard import SummaryWriter

            self.fold += 1
            self.writer = SummaryWriter(str(self.run_dir / "tensorboard" / f"fold_{self.fold}"))
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and value == value:
                self.writer.add_scalar(key.replace("_", "/", 1), float(value), epoch)
        self.writer.flush()
        self.last = epoch
        return None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
