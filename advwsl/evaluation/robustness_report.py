"""The report of a robustness evaluation (section A V-7): per-sample :class:`~advwsl.results.AttackResult`
records of every attack, from which the rows of Tables A V-5/A V-6, the curves of Figure A V-4 and the
sanity checks are derived; saving, loading and the exact merge of shards."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..attacks.result import COLUMNS, AttackResult, combine_results, load_result
from ..errors import ConfigError
from ..io import atomic_write_text, read_json, to_jsonable, write_json
from ..plotting import plot_robustness_curves
from . import sanity


def concat_results(parts: Sequence[AttackResult]) -> AttackResult:
    """One result from per-batch (or per-shard) results of the same attack, sorted by sample index."""
    index = np.concatenate([p.index for p in parts])
    if np.unique(index).size != index.size:
        raise ConfigError("the same sample appears in two shards; merge the shards of one evaluation only once")
    order = np.argsort(index, kind="stable")
    cols = {c: np.concatenate([getattr(p, c) for p in parts])[order] for c in COLUMNS}
    params = {**parts[0].params, "repaired": sum(int(p.params.get("repaired", 0)) for p in parts)}
    return replace(parts[0], seconds=float(sum(p.seconds for p in parts)), adversarials=None, params=params, **cols)


@dataclass
class RobustnessReport:
    """Everything an evaluation measured, per sample, with the tables, curves and checks derived from it.

    ``results`` maps each attack name (and ``"All"``) to its :class:`AttackResult`; ``pgd`` maps budget
    radii to the PGD-L2 results of the monotonicity check; ``more_steps`` holds the rerun of the first
    attack with more steps on a subset; ``noise`` is a frame (``index``, ``noise_fooled``) for the
    Gaussian-noise check; ``config`` records how it was run (shard included).
    """

    results: dict[str, AttackResult]
    epsilon: tuple[float, ...]
    epsilons: tuple[float, ...]
    config: dict[str, Any]
    pgd: dict[float, AttackResult] = field(default_factory=dict)
    more_steps: AttackResult | None = None
    noise: pd.DataFrame | None = None

    @property
    def attacks(self) -> list[str]:
        return [k for k in self.results if k != "All"]

    def table(self) -> pd.DataFrame:
        """The rows of Tables A V-5/A V-6: attack success, mean L2 of successes, median L2 (failures counted
        as the distance to a gray image), model accuracy at each radius of ``epsilon`` (shares in [0, 1])."""
        rows = []
        for name, r in self.results.items():
            s = r.summary()
            row = {"attack": r.attack, "budget": r.budget if name != "All" else "", "success": s["success"],
                   "mean_l2": s["mean_l2"], "median_l2": s["median_l2"]}
            row.update({f"accuracy_at_{e:g}": float(r.accuracy(e)) for e in self.epsilon})
            rows.append(row)
        return pd.DataFrame(rows)

    def curves(self) -> pd.DataFrame:
        """Figure A V-4: accuracy (a share in [0, 1]) against epsilon, one curve per attack and ``All``; long
        format."""
        frames = []
        for name, r in self.results.items():
            c = r.robustness_curve(self.epsilons)
            frames.append(pd.DataFrame({"attack": name, "epsilon": c["epsilon"], "accuracy": c["accuracy"]}))
        for eps, r in sorted(self.pgd.items()):
            frames.append(pd.DataFrame({"attack": "pgd (bounded)", "epsilon": [eps],
                                        "accuracy": [float(np.mean(r.originally_correct & ~r.success))]}))
        return pd.concat(frames, ignore_index=True)

    def checks(self) -> list[sanity.SanityCheck]:
        """The sanity checks (see :mod:`advwsl.evaluation.sanity`) on the per-sample records."""
        curves = {name: (list(self.epsilons), list(r.accuracy(np.asarray(self.epsilons)))) for name, r in
                  self.results.items()}
        if len(self.pgd) > 1:
            eps = sorted(self.pgd)
            curves["pgd (bounded)"] = (eps, [float(np.mean(self.pgd[e].originally_correct & ~self.pgd[e].success))
                                             for e in eps])
        first = next(iter(self.results.values()))
        out = [sanity.check_above_chance(first.label, first.originally_correct), sanity.check_monotone(curves)]
        out.append(sanity.check_unbounded_success(
            {name: float(np.mean(r.success[r.originally_correct])) if r.originally_correct.any() else 1.0
             for name, r in self.results.items()}))
        if self.more_steps is not None and len(self.more_steps):
            base = self.results[self.config["more_steps"]["attack"]]
            pos = np.searchsorted(base.index, self.more_steps.index)
            ok = self.more_steps.originally_correct
            out.append(sanity.check_more_steps(base.norms[pos][ok], self.more_steps.norms[ok],
                                               label=f"{base.attack} {base.budget} -> {self.more_steps.budget}"))
        if self.noise is not None and "All" in self.results:
            best = self.results["All"]
            ok = best.originally_correct & best.success
            fooled = self.noise["noise_fooled"].to_numpy()[ok]
            out.append(sanity.check_noise(float(fooled.mean()) if fooled.size else 0.0, 1.0 if ok.any() else 0.0))
        return out

    def warning(self, *, emit: bool = False) -> str | None:
        """A warning naming the model when a check failed (see :func:`sanity.masking_warning`)."""
        return sanity.masking_warning(self.config.get("model_name", "model"), self.checks(), emit=emit)

    def markdown(self) -> str:
        """Table A V-5 layout in Markdown (percent), followed by the checks."""
        t = self.table()
        eps = [f"{e:g}" for e in self.epsilon]
        lines = ["| Attack | Budget | Attack success (%) | Mean L2 | Median L2 | "
                 + " | ".join(f"Accuracy at eps <= {e} (%)" for e in eps) + " |",
                 "|---|---|---:|---:|---:|" + "---:|" * len(eps)]
        for row in t.to_dict(orient="records"):
            name = "**All**" if row["attack"] == "All" else row["attack"]
            lines.append(f"| {name} | {row['budget']} | {100 * row['success']:.1f} | {row['mean_l2']:.4f} | "
                         f"{row['median_l2']:.4f} | " + " | ".join(f"{100 * row[f'accuracy_at_{e}']:.1f}" for e in eps)
                         + " |")
        lines.append("")
        precision = self.config.get("precision", "fp32")
        if precision != "fp32" or self.config.get("channels_last"):
            repaired = sum(int(r.params.get("repaired", 0)) for name, r in self.results.items() if name != "All")
            lines += [f"Attacks ran in {precision}; every result verified in fp32 ({repaired} adversarials lengthened "
                      "to hold there).", ""]
        lines += [f"- [{'ok' if c.passed else 'FAIL'}] {c.name}: {c.message}" for c in self.checks()]
        warn = self.warning()
        if warn:
            lines += ["", f"**Warning**: {warn}"]
        return "\n".join(lines)

    # ------------------------------------------------------------------------------------ save / load
    def save(self, directory: str | Path) -> Path:
        """Write per-sample CSVs (one per attack, PGD radius, more-steps rerun, noise), ``table.csv``,
        ``robustness_curves.csv``, ``robustness_curves.png`` (Figure A V-4), ``summary.json`` and ``table.md``
        into ``directory``; nothing is overwritten."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if (directory / "robustness.json").exists():
            raise ConfigError(f"{directory} already holds a robustness evaluation; choose another folder")
        for name, r in self.results.items():
            if name != "All":
                r.save(directory, f"attack-{name}")
        for i, (eps, r) in enumerate(sorted(self.pgd.items())):
            r.save(directory, f"pgd-{i}")
        if self.more_steps is not None:
            self.more_steps.save(directory, "more-steps")
        if self.noise is not None:
            atomic_write_text(directory / "noise.csv", self.noise.to_csv(index=False))
        atomic_write_text(directory / "table.csv", self.table().to_csv(index=False))
        atomic_write_text(directory / "robustness_curves.csv", self.curves().to_csv(index=False))
        atomic_write_text(directory / "table.md", self.markdown() + "\n")
        plot_robustness_curves(self.curves(), directory / "robustness_curves.png", epsilon=self.epsilon,
                               norms={name: r.norms for name, r in self.results.items()},
                               title=f"{self.config.get('model_name', 'model')}: accuracy under attack")
        write_json(directory / "summary.json", {"table": self.table().to_dict(orient="records"),
                                                "checks": [c.as_dict() for c in self.checks()],
                                                "warning": self.warning()})
        write_json(directory / "robustness.json", {
            "attacks": self.attacks, "epsilon": list(self.epsilon), "epsilons": list(self.epsilons),
            "pgd_epsilons": sorted(self.pgd), "more_steps": self.more_steps is not None,
            "noise": self.noise is not None, "config": self.config})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> RobustnessReport:
        """Read a report written by :meth:`save`; a damaged one (missing or edited files, values that do not
        parse) is a :class:`ConfigError` naming the directory."""
        directory = Path(directory)
        meta_path = directory / "robustness.json"
        if not meta_path.is_file():
            raise ConfigError(f"{directory} holds no robustness evaluation (no robustness.json); pass the run "
                              "directory written by `advwsl evaluate-robustness`")
        try:
            return cls._read(directory, read_json(meta_path, what="robustness evaluation"))
        except ConfigError as exc:
            raise ConfigError(f"{directory} is damaged: {exc}; evaluate it again") from None
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, OSError, pd.errors.ParserError) as exc:
            raise ConfigError(f"{directory} is damaged ({type(exc).__name__}: {exc}): its files were edited or "
                              "truncated; evaluate it again") from None

    @classmethod
    def _read(cls, directory: Path, meta: dict[str, Any]) -> RobustnessReport:
        results = {name: load_result(directory / f"attack-{name}") for name in meta["attacks"]}
        results["All"] = combine_results(list(results.values()))
        pgd = {float(e): load_result(directory / f"pgd-{i}") for i, e in enumerate(meta["pgd_epsilons"])}
        more = load_result(directory / "more-steps") if meta["more_steps"] else None
        noise = pd.read_csv(directory / "noise.csv") if meta["noise"] else None
        epsilon = meta["epsilon"] if isinstance(meta["epsilon"], list) else [meta["epsilon"]]
        return cls(results, tuple(float(e) for e in epsilon), tuple(meta["epsilons"]), meta["config"], pgd, more,
                   noise)


#: What the fields of a shard's fingerprint are, for the message naming a mismatch.
FINGERPRINT_FIELDS = {
    "model_sha256": "model weights", "inputs_sha256": "evaluation images (dataset, split, sample selection)",
    "labels_sha256": "labels", "n_samples": "number of samples", "attacks": "attacks", "budgets": "attack budgets",
    "epsilon": "table radii (--epsilon)", "epsilons": "curve grid (--curve)", "levels": "quantization levels",
    "seed": "seed", "batch_size": "batch size", "checks": "sanity checks", "pgd_epsilons": "PGD check radii",
    "pgd_steps": "PGD check steps", "dataset": "dataset", "dataset_kwargs": "dataset options", "split": "split",
    "advwsl": "advwsl version"}


def _plain(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples as lists, ...), so saved and in-memory shards compare."""
    return json.loads(json.dumps(to_jsonable(value)))


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:16] + "..." + text[-8:]


def _shard_index(config: dict[str, Any]) -> np.ndarray:
    """The sample indices shard ``k/N`` evaluates: those of the batches ``b`` with ``b % N == k``."""
    n, size = int(config["fingerprint"]["n_samples"]), int(config["fingerprint"]["batch_size"])
    k, n_shards = (int(v) for v in config["shard"])
    parts = [np.arange(b * size, min((b + 1) * size, n)) for b in range(k, -(-n // size), n_shards)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _coverage_gap(index: np.ndarray, expected: np.ndarray) -> str | None:
    """How ``index`` differs from ``expected`` (None when it holds each expected sample once)."""
    values, counts = np.unique(index, return_counts=True)
    if len(index) == len(expected) and np.array_equal(values, expected):
        return None
    gaps = [(np.setdiff1d(expected, values), "missing"), (np.setdiff1d(values, expected), "unexpected"),
            (values[counts > 1], "twice")]
    return ", ".join(f"{what} {v[:5].tolist()}{' ...' if len(v) > 5 else ''}" for v, what in gaps if len(v))


def check_coverage(report: RobustnessReport, name: str = "the report") -> None:
    """Check that every table of ``report`` (each attack, PGD radius, the more-steps rerun and the noise
    check) holds exactly the samples of its shard; a deleted row, shifted or duplicated indices are a
    :class:`ConfigError` naming the table and the samples."""
    expected = _shard_index(report.config)
    tables = {f"attack {a}": r.index for a, r in report.results.items() if a != "All"}
    tables.update({f"PGD check at {e:g}": r.index for e, r in report.pgd.items()})
    if report.noise is not None:
        tables["noise check"] = report.noise["index"].to_numpy()
    wanted = {t: expected for t in tables}
    if report.more_steps is not None:
        tables["more-steps check"] = report.more_steps.index
        wanted["more-steps check"] = expected[expected % int(report.config.get("check_stride", 1)) == 0]
    k, n_shards = report.config["shard"]
    for table, index in tables.items():
        gap = _coverage_gap(np.asarray(index).astype(np.int64), wanted[table])
        if gap:
            raise ConfigError(f"{name}: the {table} records do not cover shard {k}/{n_shards} of "
                              f"{report.config['fingerprint']['n_samples']} samples ({gap}); its files were edited "
                              f"or damaged: evaluate shard {k}/{n_shards} again")


def merge_reports(reports: Sequence[RobustnessReport], names: Sequence[str] | None = None) -> RobustnessReport:
    """Join the shards of one evaluation into the report a single process would have produced (per-sample
    records identical; run times add up). Every shard carries a fingerprint of everything its records depend
    on but its index (model weights, images and labels, attacks and budgets, radii and curve grid, levels,
    seed, batch size, checks, dataset and split when run by the job, advwsl version): a mismatch is an error
    naming the field. Shards must together cover every shard ``0/N ... N-1/N`` once. ``names`` (e.g. the run
    directories) name the shards in messages."""
    if not reports:
        raise ConfigError("merge needs at least one shard run directory")
    names = list(names) if names is not None else [f"shard {r.config.get('shard')}" for r in reports]
    first = reports[0]
    for name, r in zip(names, reports):
        if not isinstance(r.config.get("fingerprint"), dict):
            raise ConfigError(f"{name} records no fingerprint of its evaluation (written by an older advwsl?); "
                              "evaluate its shards again with this version to merge them")
    reference = _plain(first.config["fingerprint"])
    for name, r in zip(names[1:], reports[1:]):
        other = _plain(r.config["fingerprint"])
        for key in sorted(set(reference) | set(other)):
            if reference.get(key) != other.get(key):
                what = FINGERPRINT_FIELDS.get(key, key)
                raise ConfigError(
                    f"{name} and {names[0]} are shards of different evaluations: their {what} ({key}) differ "
                    f"({_short(other.get(key))} vs {_short(reference.get(key))}); merge only the shards of one "
                    "evaluation (same model, data, attacks, budgets, --epsilon, --levels, --seed)")
    timing = ("shard", "seconds")
    key = {k: v for k, v in first.config.items() if k not in timing}
    n_shards = first.config["shard"][1]
    for name, r in zip(names[1:], reports[1:]):
        other = {k: v for k, v in r.config.items() if k not in timing}
        if _plain(other) != _plain(key) or r.attacks != first.attacks or r.epsilons != first.epsilons \
                or r.config["shard"][1] != n_shards:
            diff = sorted(k for k in set(key) | set(other) if _plain(key.get(k)) != _plain(other.get(k)))
            raise ConfigError(f"{name} was run with other settings than {names[0]} (differs in "
                              f"{diff or 'attacks/epsilons/number of shards'}); merge shards of one evaluation")
    shards = sorted(r.config["shard"][0] for r in reports)
    if shards != list(range(n_shards)):
        raise ConfigError(f"merge needs every shard 0..{n_shards - 1} of {n_shards} exactly once, got {shards}")
    for name, r in zip(names, reports):
        check_coverage(r, name)
    results = {name: concat_results([r.results[name] for r in reports]) for name in first.attacks}
    results["All"] = combine_results(list(results.values()))
    pgd = {e: concat_results([r.pgd[e] for r in reports]) for e in first.pgd}
    more = concat_results([r.more_steps for r in reports]) if first.more_steps is not None else None
    noise = None
    if first.noise is not None:
        noise = pd.concat([r.noise for r in reports]).sort_values("index", kind="stable").reset_index(drop=True)
    # the shards' times add up
    config = {**key, "shard": [0, 1], "seconds": sum(float(r.config.get("seconds", 0.0)) for r in reports)}
    return RobustnessReport(results, first.epsilon, first.epsilons, config, pgd, more, noise)
