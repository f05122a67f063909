"""``advwsl data``: list the datasets, export their folds as CSV, and prepare the CAMELYON16 patches
(section 2.1.2.3). Wiring only: the work is in :mod:`advwsl.data`."""

from __future__ import annotations

import json

import click

from ..errors import ConfigError
from .options import data_root, progress, seed

#: The magnifications (objective power) of BreakHis.
BREAKHIS_MAGNIFICATIONS = (40, 100, 200, 400)


@click.group("data")
def data() -> None:
    """Datasets: list them, export folds, prepare CAMELYON16 patches."""


@data.command("list")
def list_cmd() -> None:
    """The dataset names accepted by --dataset."""
    from ..data import get_dataset_spec, list_datasets

    for name, what in list_datasets().items():
        spec = get_dataset_spec(name)
        click.echo(f"{name:12s} {what}{'  [needs --data-root]' if spec.needs_root else ''}")


@data.command("folds")
@click.argument("dataset")
@data_root
@click.option("--out", type=click.Path(), required=True, help="Folder for fold_<k>/{train,valid,test}.csv.")
@click.option("--n-folds", type=click.IntRange(min=2), default=5, show_default=True, help="Number of folds.")
@seed()
@click.option("--magnification", type=float, default=None,
              help="Objective power of the images: BreakHis's 40, 100, 200 or 400.")
@click.option("--overwrite", is_flag=True, help="Replace existing fold files.")
def folds_cmd(dataset: str, data_root: str | None, out: str, n_folds: int, seed: int, magnification: float | None,
              overwrite: bool) -> None:
    """Export the train/valid/test split of every fold of DATASET (section 2.1.2.2) as CSV."""
    from ..data.export import export_dataset_folds

    if magnification is not None and magnification not in BREAKHIS_MAGNIFICATIONS:
        raise ConfigError(f"--magnification must be one of BreakHis's {', '.join(map(str, BREAKHIS_MAGNIFICATIONS))}, "
                          f"got {magnification:g}")
    kwargs = {"magnification": int(magnification)} if magnification is not None else {}
    files = export_dataset_folds(dataset, data_root, out, n_folds=n_folds, seed=seed, overwrite=overwrite, **kwargs)
    click.echo(f"wrote {len(files)} files under {out}")


@data.command("camelyon16")
@click.option("--slides", type=click.Path(file_okay=False, exists=True), required=True,
              help="Folder of the slides (searched recursively).")
@click.option("--annotations", type=click.Path(file_okay=False, exists=True), required=True,
              help="Folder of the ASAP XML lesion annotations.")
@click.option("--out", type=click.Path(), required=True, help="Output folder (resumable: rerun with the same settings).")
@click.option("--patch-size", type=int, default=512, show_default=True,
              help="Patch side in level-0 pixels (the reference uses 512, 768 and 1024).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Processes, one slide each.")
@click.option("--png/--no-png", default=False, show_default=True, help="Also write PNG patches and masks.")
@seed()
@click.option("--n-folds", type=click.IntRange(min=2), default=5, show_default=True, help="Number of folds.")
@click.option("--pn", type=float, default=0.01, show_default=True, help="Share of category-2 patches kept.")
@click.option("--labels", default=None, help="Optional CSV 'name,Tumor|Normal' (e.g. the test reference.csv).")
@click.option("--backend", type=click.Choice(["auto", "openslide", "tifffile"]), default="auto", show_default=True,
              help="Slide reader: OpenSlide, tifffile (plain TIFF), or auto (OpenSlide when it reads the file).")
@progress
def camelyon16(slides: str, annotations: str, out: str, patch_size: int, workers: int, png: bool, seed: int,
               n_folds: int, pn: float, labels: str | None, backend: str, progress: bool) -> None:
    """Sample the weakly supervised CAMELYON16 patch dataset (section 2.1.2.3, Table 2.4)."""
    from ..data.camelyon16.prepare import prepare_camelyon16
    from ..data.camelyon16.sampling import ProtocolConfig

    cfg = ProtocolConfig(patch_size=patch_size, seed=seed, n_folds=n_folds, pn=pn)
    summary = prepare_camelyon16(slides, annotations, out, config=cfg, workers=workers, write_png=png,
                                 backend=backend, labels_csv=labels, progress=progress)
    for origin, c in summary["table_2_4"].items():
        click.echo(f"{origin}: before calibration {c['before_total']} (category 1: {c['before_category1']}, "
                   f"category 2: {c['before_category2']}); after {c['after_total']} "
                   f"(category 2: {c['after_category2']})")
    if summary["excluded"]:
        click.echo(f"excluded (tumour without annotation): {', '.join(summary['excluded'])}")
    click.echo(f"summary: {json.dumps(summary['sets'].get('fold_0/train', {}))} in fold 0 train; "
               f"folds written under {out}/folds")


COMMANDS = [data]
