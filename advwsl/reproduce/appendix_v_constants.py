"""Appendix V, section 4: Figure A V-2 — the best constant ``c`` C&W 9 x 10 000 finds per image, with and
without adversarial training (:func:`cw_constants`), and the test of the reference's "adversarially trained
models often require higher c"."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats

from ..attacks import get_attack_spec
from ..attacks import carlini_wagner
from ..attacks.carlini_wagner import carlini_wagner_l2_with_constants
from ..attacks.chunks import ChunkStore, function_sha256, module_sha256
from ..config import ConstantsSettings
from ..models import load_model
from ..jobs.data import load_data
from ..logs import LOGGER
from ..evaluation.statistics import holm, verdict
from ..plotting import plot_constant_histogram
from ..utils import select_device, worker_threads
from .findings import Verdict, findings_markdown
from .appendix_v import DATASETS, _budget_kwargs, _data, _spawned
from .appendix_v_defenses import check_defense_checkpoints, defense_model
from .registry import Context, Experiment, Outcome

__all__ = ["cw_constants", "CONSTANTS_FIGURE"]


def _constants_task(payload: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """One model's C&W run with constants (in a worker process or here): per image the best constant, the
    L2 norm of the returned adversarial, whether it is adversarial; and the seconds it took. Each finished
    batch is saved in the ``chunks`` folder and read back by a resumed run."""
    checkpoint, dataset, data_root, n, kwargs, batch_size, threads, device, chunks = payload
    if threads:
        torch.set_num_threads(threads)
    dev = select_device(device)
    model = load_model(checkpoint).to(dev).eval()
    data = load_data(dataset, split="test", data_root=data_root, n_samples=n)
    store = ChunkStore(chunks) if chunks is not None else None
    code = function_sha256(carlini_wagner.carlini_wagner_l2_with_constants)
    run_key = ChunkStore.run_key(attack="cw-constants", code=code, kwargs=kwargs, model=module_sha256(model),
                                 device=dev.type)
    parts: dict[str, list[np.ndarray]] = {"c": [], "l2": [], "adversarial": []}
    seconds = 0.0
    for start in range(0, len(data.labels), batch_size):
        x = data.images[start:start + batch_size].to(dev)
        y = data.labels[start:start + batch_size].to(dev)
        key = ChunkStore.chunk_key(run_key, x, y)
        saved = store.load(key) if store is not None else None
        if saved is None:
            tic = time.perf_counter()
            adv, c = carlini_wagner_l2_with_constants(model, x, y, **kwargs)
            with torch.no_grad():
                pred = model(adv).argmax(1)
            saved = {"c": c.cpu().numpy(), "l2": (adv - x).flatten(1).norm(dim=1).cpu().numpy(),
                     "adversarial": (pred != y).cpu().numpy(), "seconds": np.array(time.perf_counter() - tic)}
            if store is not None:
                store.save(key, saved)
            LOGGER.info("C&W with constants on %s: images %d-%d done in %.0f s", checkpoint, start,
                        start + len(y) - 1, float(saved["seconds"]))
        for name in parts:
            parts[name].append(saved[name])
        seconds += float(saved["seconds"])
    return (np.concatenate(parts["c"]), np.concatenate(parts["l2"]), np.concatenate(parts["adversarial"]),
            seconds)


def cw_constants(ctx: Context) -> Outcome:
    """Figure A V-2 (section A V-4): the histogram of the best constant ``c`` C&W finds per image, with and
    without adversarial training. Settings: ``dataset``, ``n_samples``, ``budget`` (9 x 10 000), ``models``
    (``baseline``, ``madry``, ``ddn``), ``defense`` (as Table A V-5's). The finding ("adversarially trained
    models often require higher C") is tested by an exact sign test on the images every model made
    adversarial: each defense against the baseline, Holm-adjusted."""
    dataset = ctx.settings.dataset
    base = {**DATASETS[dataset]["recipe"](ctx.data_root), **ctx.settings.recipe}
    d = ctx.settings.defense
    kwargs = _constants_kwargs(ctx.settings)
    names = {"baseline": "Baseline", "madry": "Madry", "ddn": "DDN-trained"}
    checkpoints = {k: defense_model(dataset, k, d, base, data_root=ctx.data_root, progress=ctx.progress,
                                    log=ctx.log)[1]["checkpoint"] for k in ctx.settings.models}
    n = len(_data(ctx, dataset, ctx.settings.n_samples)[1])
    payloads = {k: (str(cp), dataset, ctx.data_root, n, kwargs, ctx.settings.batch_size, 0, ctx.device, ctx.chunks)
                for k, cp in checkpoints.items()}
    if ctx.workers > 1:
        threads = worker_threads(min(ctx.workers, len(payloads)))
        runs = _spawned(_constants_task, {k: p[:6] + (threads, "cpu", p[8]) for k, p in payloads.items()},
                        ctx.workers)
    else:
        runs = {}
        for k, p in payloads.items():
            ctx.log(f"C&W {ctx.settings.budget} on {n} images of the {names[k]} model")
            runs[k] = _constants_task(p)
    frame = pd.DataFrame({"index": np.arange(n)})
    for k, (c, l2, adv, _) in runs.items():
        frame[f"{k}_c"], frame[f"{k}_l2"], frame[f"{k}_adversarial"] = c, l2, adv
    frame.to_csv(ctx.run_dir / "fig-A-V-2.csv", index=False)
    constants = {f"{names[k]}": runs[k][0] for k in runs}
    plot_constant_histogram(constants, ctx.run_dir / "fig-A-V-2.png",
                            title=f"Figure A V-2: best constant c of C&W {ctx.settings.budget} per image, {dataset}, "
                                  f"first {n} test images")
    text = [f"# {ctx.entry.id}: {ctx.entry.title}", "",
            f"Data: {dataset}, the first {n} test images; C&W {ctx.settings.budget} (Table A V-9's "
            f"hyper-parameters" + (f", with {ctx.settings.attack_kwargs}" if ctx.settings.attack_kwargs else "")
            + f": {kwargs}). The defenses as Table A V-5's (section A V-6).", "",
            "| model | images with a constant | log2 c: min | median | max | seconds |", "|---|---:|---:|---:|---:|---:|"]
    summary = {}
    for k, (c, _, _, seconds) in runs.items():
        v = np.log2(c[np.isfinite(c)])
        stats_k = {"images": int(v.size), "log2_min": float(v.min()) if v.size else None,
                   "log2_median": float(np.median(v)) if v.size else None,
                   "log2_max": float(v.max()) if v.size else None, "seconds": seconds}
        summary[k] = stats_k
        text.append(f"| {names[k]} | {v.size} | " + " | ".join("-" if stats_k[m] is None else f"{stats_k[m]:.2f}"
                                                              for m in ("log2_min", "log2_median", "log2_max"))
                    + f" | {seconds:.0f} |")
    text += ["", "Reference (MNIST): the best c ranges from 2^-11 to 2^5 and adversarially trained models often "
             "require higher c.", ""]
    verdicts = _constant_findings(runs, names)
    text += findings_markdown(verdicts)
    return Outcome("\n".join(text), ["fig-A-V-2.png", "fig-A-V-2.csv"],
                   {"models": summary, "findings": [asdict(v) for v in verdicts]})


def _constant_findings(runs: dict[str, tuple], names: dict[str, str]) -> list[Verdict]:
    """Each defense against the baseline on the images both made adversarial: an exact sign test of
    "higher c" (ties dropped), Holm-adjusted over the defenses."""
    base = runs["baseline"][0]
    tests = []
    for k in (k for k in runs if k != "baseline"):
        c = runs[k][0]
        both = np.isfinite(base) & np.isfinite(c)
        higher, lower = int((c[both] > base[both]).sum()), int((c[both] < base[both]).sum())
        p = float(stats.binomtest(higher, higher + lower).pvalue) if higher + lower else 1.0
        tests.append((k, higher, lower, int(both.sum()), p))
    adjusted = holm([t[4] for t in tests])
    out = []
    for (k, higher, lower, n, _), p in zip(tests, adjusted):
        v = verdict(supports=p < 0.05 and higher > lower, against=p < 0.05 and higher < lower)
        out.append(Verdict(f"The {names[k]} model requires a higher C&W constant than the baseline (reference: "
                           "adversarially trained models often require higher c)", v,
                           f"higher on {higher}, lower on {lower}, equal on {n - higher - lower} of {n} images "
                           f"(exact sign test, Holm-adjusted p = {p:.2g})",
                           {"higher": higher, "lower": lower, "n": n, "p_adjusted": p}))
    return out


def _constants_kwargs(settings: ConstantsSettings) -> dict[str, Any]:
    """The C&W keyword arguments of Figure A V-2: the budget's, then ``attack_kwargs`` (checked against the
    attack's signature; refused before any training), once the defenses it names are checked."""
    check_defense_checkpoints(settings)
    budget = _budget_kwargs("cw", settings.budget, settings.dataset)
    return get_attack_spec("cw").check({**budget, **settings.attack_kwargs}, option="attack_kwargs")


CONSTANTS_FIGURE = Experiment("C&W constants", cw_constants, ConstantsSettings, check=_constants_kwargs)
