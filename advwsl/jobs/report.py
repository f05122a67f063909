"""The printed report of ``advwsl attack`` (``summary.md``): Markdown tables built from the run's summary.
Shares are stored as fractions in [0, 1] and shown here in percent."""

from __future__ import annotations

import math
from typing import Any

from ..io import markdown_table

__all__ = ["format_attack_report"]

_MOVEMENT = (("cam_dice", "Dice(clean CAM, adv CAM)", 1.0), ("cam_iou", "IoU(clean CAM, adv CAM)", 1.0),
             ("cam_spearman", "Spearman(clean CAM, adv CAM)", 1.0), ("com_shift_px", "centre-of-mass shift (px)", 0.0),
             ("com_shift", "shift / image diagonal", 0.0))


def _f(value: Any, digits: int = 3, scale: float = 1.0) -> str:
    return "-" if value is None or not math.isfinite(float(value)) else f"{scale * float(value):.{digits}f}"


def _row(name: str, budget: str, t: dict[str, Any]) -> list[str]:
    return [name, budget, _f(t["success"], 1, 100), _f(t["mean_l2"], 4), _f(t["median_l2"], 4),
            _f(t["grads_per_sample"], 0), _f(t["seconds"], 1)]


def _robust_accuracy(rows: list[dict[str, Any]] | None) -> list[str]:
    """The fixed-epsilon report (RobustBench's terms): robust accuracy per attack and in the worst case."""
    if not rows:
        return []
    radii = sorted({r["epsilon"] for r in rows})
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    value = {(r["attack"], r["epsilon"]): r["robust_accuracy"] for r in rows}
    table = [[a, *(_f(value.get((a, e)), 1, 100) for e in radii)] for a in attacks]
    return ["", "Robust accuracy (%) at epsilon: correctly classified and not made adversarial within epsilon by the "
                "attack (fixed-radius attacks run at each epsilon); worst case over every attack:",
            markdown_table(["attack", *(f"eps={e:g}" for e in radii)], table, align="l" + "r" * len(radii)).rstrip()]


def format_attack_report(summary: dict[str, Any]) -> str:
    """The report of :func:`advwsl.jobs.attack.attack_job`: model and data, the Table A V-1 rows (targeted:
    average and least likely), accuracy at the radii ε, and for models with CAMs, per attack, the CAM's
    localization against the masks and how much it moved (clean, adversarial, at each ε)."""
    model, data = summary["model"], summary["data"]
    lines = [f"Model: {model.get('notice') or model.get('checkpoint') or model['name']}",
             f"Data: {data['description']}, {summary['n_samples']} images"]
    prec = summary.get("precision") or {}
    if prec.get("precision", "fp32") != "fp32" or prec.get("channels_last"):
        shown = f"{prec['precision']}{' (channels_last)' if prec['channels_last'] else ''}"
        lines.append(f"Precision: attacks ran in {shown};"
                     f" every result verified in fp32 ({prec['repaired']} adversarials lengthened to hold there)")
    lines.append("")
    entries = summary["attacks"]
    if summary["targeted"]:
        rows = []
        for e in entries:
            t = e["table"]
            a, ll = t["average"], t["least_likely"]
            rows.append([t["attack"], t["budget"], _f(a["success"], 2, 100), _f(a["mean_l2"], 4),
                         _f(ll["success"], 1, 100), _f(ll["mean_l2"], 4), _f(t["grads_per_sample"], 0),
                         _f(t["seconds"], 1)])
        lines.append(markdown_table(["Attack", "Budget", "Average success (%)", "Average mean L2",
                                     "Least likely success (%)", "Least likely mean L2", "#Grads", "Run-time (s)"],
                                    rows, align="llrrrrrr").rstrip())
    else:
        rows = [_row(e["table"]["attack"], e["table"]["budget"], e["table"]) for e in entries]
        if summary.get("all"):
            rows.append(_row("All", "", summary["all"]["table"]))
        lines.append(markdown_table(["Attack", "Budget", "Success (%)", "Mean L2", "Median L2", "#Grads",
                                     "Run-time (s)"], rows, align="llrrrrr").rstrip())
    lines += ["", f"Clean accuracy: {100 * summary['clean_accuracy']:.1f} % of {summary['n_samples']} images"]
    eps = [f"{e:g}" for e in summary["epsilon"]]
    goal_cam = all(e["goal"] == "cam" for e in entries)
    what = "CAM intact and label kept (%)" if goal_cam else "Accuracy (%)"
    rows = [[f"{e['table']['attack']} {e['table']['budget']}", *(_f(e["accuracy_at"][k], 1, 100) for k in eps)]
            for e in entries]
    if summary.get("all"):
        rows.append(["All", *(_f(summary["all"]["accuracy_at"][k], 1, 100) for k in eps)])
    lines += [f"{what} at L2 budget epsilon:",
              markdown_table(["attack", *(f"eps={k}" for k in eps)], rows, align="l" + "r" * len(eps)).rstrip()]
    lines += _robust_accuracy(summary.get("robust_accuracy"))
    for e in entries:
        cams = e.get("cams")
        if not cams:
            continue
        s, at = cams["summary"], cams["at"]
        lines += ["", f"{e['table']['attack']} {e['table']['budget']}: CAM of the clean prediction "
                      f"(rule {summary['cam_rule']}):"]
        rows = []
        if "mask_dice_clean" in s:
            for key, name in (("dice", "Dice vs mask"), ("iou", "IoU vs mask")):
                rows.append([f"{name} ({int(s['n_with_mask'])} lesion images)", _f(s[f"mask_{key}_clean"]),
                             _f(s[f"mask_{key}_adv"]), *(_f(at[k][f"mask_{key}"]) for k in eps)])
        for key, name, clean in _MOVEMENT:
            rows.append([name, _f(clean), _f(s[key]), *(_f(at[k][key]) for k in eps)])
        lines.append(markdown_table(["measure", "clean", "adversarial", *(f"eps={k}" for k in eps)], rows,
                                    align="lrr" + "r" * len(eps)).rstrip())
    for message in summary.get("notices", []):
        lines.append(f"Note: {message}")
    return "\n".join(lines)
