"""Results of attack runs: per-sample records and the aggregates of Tables A V-1 to A V-6 of the reference.

Table A V-1 reports, per attack: the success rate (over the samples the model classifies correctly), the
mean L2 norm of the successful adversarials, the median L2 norm over all attacked samples counting a
failure as the distance to a uniform gray image (Brendel et al., 2018), the average number of gradient
computations per sample and the run time. Tables A V-2 to A V-4 report targeted attacks on average over
all target classes and in the least-likely case (per image, the worst result over its targets). Tables A
V-5/V-6 add an "All" row: per sample, the smallest adversarial found by any of several attacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError, InputError
from ..io import atomic_write_text, read_json, write_json

#: Per-sample columns, in CSV order.
COLUMNS = ("index", "label", "target", "clean_pred", "adv_pred", "originally_correct", "success", "l2",
           "gray_l2", "n_forward", "n_backward")
_DTYPES = {"index": np.int64, "label": np.int64, "target": np.int64, "clean_pred": np.int64,
           "adv_pred": np.int64, "originally_correct": bool, "success": bool, "l2": np.float64,
           "gray_l2": np.float64, "n_forward": np.int64, "n_backward": np.int64}


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if values.size else float("nan")


@dataclass(frozen=True, eq=False)
class AttackResult:
    """One attack run: a record per attacked (sample, target) pair and what the run cost.

    Per-sample arrays (all of the same length): ``index`` (position in the dataset), ``label``, ``target``
    (-1 when untargeted), ``clean_pred``, ``adv_pred``, ``originally_correct``, ``success`` (only ever true
    for originally correct samples), ``l2`` (norm of the returned perturbation, recomputed), ``gray_l2``
    (distance of the input to a uniform gray image, the norm a failure counts for in the median),
    ``n_forward`` and ``n_backward`` (model calls made by the attack on the batch the sample was in).
    """

    attack: str
    budget: str
    targeted: bool
    index: np.ndarray
    label: np.ndarray
    target: np.ndarray
    clean_pred: np.ndarray
    adv_pred: np.ndarray
    originally_correct: np.ndarray
    success: np.ndarray
    l2: np.ndarray
    gray_l2: np.ndarray
    n_forward: np.ndarray
    n_backward: np.ndarray
    seconds: float = 0.0
    levels: int | None = None
    bounds: tuple[float, float] = (0.0, 1.0)
    params: dict[str, Any] = field(default_factory=dict)
    adversarials: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = len(self.index)
        for name in COLUMNS:
            value = np.asarray(getattr(self, name), dtype=_DTYPES[name])
            if value.shape != (n,):
                raise InputError(f"AttackResult.{name} must have shape ({n},), got {value.shape}")
            object.__setattr__(self, name, value)

    # ----------------------------------------------------------------------------------------- records
    def __len__(self) -> int:
        return len(self.index)

    def to_frame(self) -> pd.DataFrame:
        """The per-sample records as a DataFrame (one row per attacked sample and target)."""
        return pd.DataFrame({name: getattr(self, name) for name in COLUMNS})

    @property
    def norms(self) -> np.ndarray:
        """Per record, the norm of the smallest adversarial known: ``l2`` on success, ``inf`` on failure,
        0 for samples the model already misclassifies."""
        return np.where(~self.originally_correct, 0.0, np.where(self.success, self.l2, np.inf))

    def _per_sample_norms(self) -> tuple[np.ndarray, np.ndarray]:
        """(unique sample indices, per sample the smallest norm over its records)."""
        frame = pd.DataFrame({"index": self.index, "norm": self.norms})
        grouped = frame.groupby("index", sort=True)["norm"].min()
        return grouped.index.to_numpy(), grouped.to_numpy()

    # ------------------------------------------------------------------------------------ aggregates
    @property
    def n_samples(self) -> int:
        return int(np.unique(self.index).size)

    @property
    def clean_accuracy(self) -> float:
        """Share of samples the model classifies correctly."""
        frame = pd.DataFrame({"index": self.index, "ok": self.originally_correct})
        return float(frame.groupby("index")["ok"].first().mean()) if len(frame) else float("nan")

    def _aggregate(self, success: np.ndarray, l2: np.ndarray, gray: np.ndarray) -> dict[str, float]:
        return {"success": _mean(success.astype(float)),
                "mean_l2": _mean(l2[success]),
                "median_l2": _median(np.where(success, l2, gray))}

    def summary(self) -> dict[str, Any]:
        """Table A V-1 aggregates (and, when targeted, the average and least-likely cases of Tables A V-2
        to A V-4). Success and norms are over originally-correct samples only; shares (``success``,
        ``clean_accuracy``) are fractions in [0, 1]."""
        ok = self.originally_correct
        out: dict[str, Any] = {"attack": self.attack, "budget": self.budget, "targeted": self.targeted,
                               "n_samples": self.n_samples, "n_records": len(self),
                               "clean_accuracy": self.clean_accuracy}
        out.update(self._aggregate(self.success[ok], self.l2[ok], self.gray_l2[ok]))
        out["grads_per_sample"] = _mean(self.n_backward.astype(float))
        out["forwards_per_sample"] = _mean(self.n_forward.astype(float))
        out["seconds"] = float(self.seconds)
        if self.targeted:
            out["average"] = {k: out[k] for k in ("success", "mean_l2", "median_l2")}
            out["least_likely"] = self.least_likely()
        return out

    def least_likely(self) -> dict[str, float]:
        """Per originally-correct image, the worst result over its targets: a failure if any target failed,
        else the largest norm (the "Least Likely" columns of Tables A V-2 to A V-4)."""
        ok = self.originally_correct
        frame = pd.DataFrame({"index": self.index[ok], "success": self.success[ok], "l2": self.l2[ok],
                              "gray": self.gray_l2[ok]})
        if frame.empty:
            return {"success": float("nan"), "mean_l2": float("nan"), "median_l2": float("nan")}
        grouped = frame.groupby("index").agg(success=("success", "all"), l2=("l2", "max"), gray=("gray", "first"))
        return self._aggregate(grouped["success"].to_numpy(), grouped["l2"].to_numpy(), grouped["gray"].to_numpy())

    # ------------------------------------------------------------------------------ robustness curve
    def accuracy(self, epsilon: float | Sequence[float] | np.ndarray) -> float | np.ndarray:
        """Accuracy under attack at L2 radius ``epsilon``: the share of samples classified correctly whose
        smallest adversarial norm is larger than ``epsilon`` (a failed attack counts as robust).
        Non-increasing in ``epsilon``; ``accuracy(0)`` is the clean accuracy."""
        _, norms = self._per_sample_norms()
        eps = np.asarray(epsilon, dtype=np.float64)
        if norms.size == 0:
            return float("nan") if eps.ndim == 0 else np.full(eps.shape, np.nan)
        acc = (norms[None, :] > eps.reshape(-1, 1)).mean(axis=1)
        return float(acc[0]) if eps.ndim == 0 else acc.reshape(eps.shape)

    def robustness_curve(self, epsilons: Sequence[float] | np.ndarray | None = None,
                         num: int = 101) -> pd.DataFrame:
        """``accuracy(epsilon)`` on a grid (default: ``num`` points from 0 to the largest adversarial norm)."""
        if epsilons is None:
            _, norms = self._per_sample_norms()
            finite = norms[np.isfinite(norms)]
            top = float(finite.max()) if finite.size else 1.0
            epsilons = np.linspace(0.0, top * 1.05 if top > 0 else 1.0, num)
        eps = np.asarray(epsilons, dtype=np.float64)
        return pd.DataFrame({"epsilon": eps, "accuracy": self.accuracy(eps)})

    # ---------------------------------------------------------------------------------- save / load
    def metadata(self) -> dict[str, Any]:
        return {"attack": self.attack, "budget": self.budget, "targeted": self.targeted,
                "seconds": float(self.seconds), "levels": self.levels, "bounds": list(self.bounds),
                "params": self.params}

    def save(self, directory: str | Path, stem: str | None = None, *, row: bool = True) -> dict[str, Path]:
        """Write ``<stem>.csv`` (per sample), ``<stem>.json`` (summary + metadata) and, with ``row``,
        ``<stem>.md`` (the Table A V-1 row; jobs that write a table of every row leave it out) into
        ``directory``; existing files are never overwritten."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        stem = stem or _slug(f"{self.attack}-{self.budget}")
        paths = {"csv": directory / f"{stem}.csv", "json": directory / f"{stem}.json"}
        if row:
            paths["md"] = directory / f"{stem}.md"
        for path in paths.values():
            if path.exists():
                raise ConfigError(f"{path} already exists; refusing to overwrite it (choose another folder)")
        atomic_write_text(paths["csv"], self.to_frame().to_csv(index=False))
        write_json(paths["json"], {"summary": self.summary(), "metadata": self.metadata()})
        if row:
            atomic_write_text(paths["md"], results_table([self]) + "\n")
        return paths


def load_result(path: str | Path) -> AttackResult:
    """Read a result written by :meth:`AttackResult.save`; ``path`` is the ``.csv``, the ``.json`` or the
    common stem."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".csv", ".json", ".md") else path
    csv, meta_path = stem.with_suffix(".csv"), stem.with_suffix(".json")
    for p in (csv, meta_path):
        if not p.is_file():
            raise ConfigError(f"{p} not found; pass the stem of a saved result (files <stem>.csv and <stem>.json)")
    frame = pd.read_csv(csv)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError(f"{csv} lacks the columns {missing}; it was not written by AttackResult.save")
    meta = read_json(meta_path, what="attack result")["metadata"]
    return AttackResult(attack=meta["attack"], budget=meta["budget"], targeted=bool(meta["targeted"]),
                        seconds=float(meta["seconds"]), levels=meta["levels"], bounds=tuple(meta["bounds"]),
                        params=meta.get("params", {}), **{c: frame[c].to_numpy() for c in COLUMNS})


def combine_results(results: Sequence[AttackResult], attack: str = "All") -> AttackResult:
    """The "All" row of Tables A V-5/V-6: per sample, the smallest successful adversarial over ``results``
    (untargeted runs on the same samples). Costs and run times add up."""
    if not results:
        raise InputError("combine_results needs at least one AttackResult")
    first = results[0]
    order = np.argsort(first.index, kind="stable")
    for r in results:
        if r.targeted:
            raise InputError(f"combine_results takes untargeted runs; {r.attack} {r.budget} is targeted")
        if len(r) != len(first) or not np.array_equal(np.sort(r.index), first.index[order]):
            raise InputError(f"{r.attack} {r.budget} was run on other samples than {first.attack} {first.budget}; "
                             "combine runs made on the same data")
    aligned = [{c: getattr(r, c)[np.argsort(r.index, kind="stable")] for c in COLUMNS} for r in results]
    base = aligned[0]
    if any(not np.array_equal(a["label"], base["label"]) for a in aligned):
        raise InputError("the runs disagree on the labels of the same samples; combine runs on the same data")
    norms = np.stack([np.where(a["success"], a["l2"], np.inf) for a in aligned])
    best = norms.argmin(axis=0)
    cols = np.arange(norms.shape[1])
    pick = {c: np.stack([a[c] for a in aligned])[best, cols] for c in ("adv_pred", "success", "l2")}
    return AttackResult(
        attack=attack, budget=" + ".join(f"{r.attack} {r.budget}" for r in results), targeted=False,
        index=base["index"], label=base["label"], target=base["target"], clean_pred=base["clean_pred"],
        adv_pred=pick["adv_pred"], originally_correct=base["originally_correct"], success=pick["success"],
        l2=pick["l2"], gray_l2=base["gray_l2"],
        n_forward=np.sum([a["n_forward"] for a in aligned], axis=0),
        n_backward=np.sum([a["n_backward"] for a in aligned], axis=0),
        seconds=float(sum(r.seconds for r in results)), levels=first.levels, bounds=first.bounds,
        params={"combined": [r.metadata() for r in results]})


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text).strip("_") or "result"


def _fmt(value: float | None, digits: int, scale: float = 1.0) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{scale * value:.{digits}f}"


def _pct(value: float | None, digits: int = 1) -> str:
    """A share in [0, 1] as a percentage (tables only; files keep fractions)."""
    return _fmt(value, digits, 100.0)


def results_table(results: Sequence[AttackResult]) -> str:
    """A Markdown table in the layout of Table A V-1 (untargeted rows) or Tables A V-2 to A V-4 (targeted
    rows: average case and least likely); success in percent."""
    untargeted = [r for r in results if not r.targeted]
    targeted = [r for r in results if r.targeted]
    blocks = []
    if untargeted:
        lines = ["| Attack | Budget | Success (%) | Mean L2 | Median L2 | #Grads | Run-time (s) |",
                 "|---|---|---:|---:|---:|---:|---:|"]
        for r in untargeted:
            s = r.summary()
            lines.append(f"| {r.attack} | {r.budget} | {_pct(s['success'])} | {_fmt(s['mean_l2'], 4)} | "
                         f"{_fmt(s['median_l2'], 4)} | {_fmt(s['grads_per_sample'], 0)} | {_fmt(s['seconds'], 1)} |")
        blocks.append("\n".join(lines))
    if targeted:
        lines = ["| Attack | Budget | Average success (%) | Average mean L2 | Least likely success (%) | "
                 "Least likely mean L2 | #Grads | Run-time (s) |",
                 "|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in targeted:
            s = r.summary()
            a, ll = s["average"], s["least_likely"]
            lines.append(f"| {r.attack} | {r.budget} | {_pct(a['success'], 2)} | {_fmt(a['mean_l2'], 4)} | "
                         f"{_pct(ll['success'])} | {_fmt(ll['mean_l2'], 4)} | {_fmt(s['grads_per_sample'], 0)} | "
                         f"{_fmt(s['seconds'], 1)} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
