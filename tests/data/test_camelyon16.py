"""CAMELYON16 protocol (section 2.1.2.3) on tiny pyramidal TIFFs + ASAP XML written here, checked against
masks computed independently (matplotlib's point-in-polygon on the whole level-0 image)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.path import Path as MplPath

from advwsl.data.camelyon16.annotations import (Annotation, grid_fractions, rasterize, read_asap_xml,
                                                write_asap_xml)
from advwsl.data.camelyon16.dataset import Camelyon16Patches
from advwsl.data.camelyon16.prepare import prepare_camelyon16
from advwsl.data.camelyon16.sampling import ProtocolConfig, calibrate
from advwsl.data.camelyon16.toy import make_toy_slide
from advwsl.data.slides import TiffSlide, open_slide, openslide_available
from advwsl.errors import DatasetError

SIZE, PATCH = (768, 512), 64
CFG = ProtocolConfig(patch_size=PATCH, n_folds=2, pn=0.5, seed=0)


def independent_mask(ann: Annotation, w: int, h: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    pts = np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], 1)
    inside = np.zeros(len(pts), bool)
    for p in ann.tumour:
        inside |= MplPath(p).contains_points(pts)
    for p in ann.exclusion:
        inside &= ~MplPath(p).contains_points(pts)
    return inside.reshape(h, w)


@pytest.fixture(scope="module")
def camelyon(tmp_path_factory):
    root = tmp_path_factory.mktemp("camelyon16")
    slides, anns = root / "slides", root / "annotations"
    (slides / "train").mkdir(parents=True)
    (slides / "test").mkdir(parents=True)
    anns.mkdir()
    truth = {}
    for i, name in enumerate(["tumor_001", "tumor_002", "normal_001", "normal_002", "normal_003"]):
        tumour = name.startswith("tumor")
        truth[name] = make_toy_slide(slides / "train" / f"{name}.tif", anns / f"{name}.xml" if tumour else None,
                                     size=SIZE, seed=i, tumour=tumour, levels=4)
    truth["test_001"] = make_toy_slide(slides / "test" / "test_001.tif", anns / "test_001.xml", size=SIZE, seed=7,
                                       levels=4)
    truth["test_002"] = make_toy_slide(slides / "test" / "test_002.tif", size=SIZE, seed=8, tumour=False, levels=4)
    # a tumour slide without its annotation is left out (as test_114 in the reference)
    make_toy_slide(slides / "train" / "tumor_003.tif", size=SIZE, seed=9, levels=4)
    out = root / "out"
    summary = prepare_camelyon16(slides, anns, out, config=CFG, workers=1, write_png=True, progress=False,
                                 backend="tifffile")
    return {"root": root, "slides": slides, "anns": anns, "out": out, "summary": summary, "truth": truth}


def test_tiff_reader_levels_and_regions(camelyon):
    path = camelyon["slides"] / "train" / "tumor_001.tif"
    with TiffSlide(path) as s:
        assert s.dimensions == SIZE and s.level_count == 4
        assert s.level_dimensions[1] == (SIZE[0] // 2, SIZE[1] // 2)
        full = s.read_level(0)
        assert np.array_equal(s.read_region((100, 60), 0, (200, 90)), full[60:150, 100:300])
        edge = s.read_region((SIZE[0] - 10, SIZE[1] - 5), 0, (30, 20))
        assert np.array_equal(edge[:5, :10], full[-5:, -10:]) and (edge[5:] == 255).all()
        low = s.read_region((256, 128), 2, (40, 30))
        assert np.array_equal(low, s.read_level(2)[32:62, 64:104])
        if openslide_available():
            with open_slide(path, backend="openslide") as o:
                assert o.level_dimensions == s.level_dimensions
                assert np.array_equal(o.read_region((100, 60), 0, (200, 90)), full[60:150, 100:300])
                assert np.array_equal(o.read_region((256, 128), 2, (40, 30)), low)


def test_asap_xml_round_trip_and_rasterisation(tmp_path):
    rng = np.random.default_rng(0)
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    poly = np.stack([120 + 80 * (1 + 0.2 * rng.random(40)) * np.cos(t), 90 + 60 * np.sin(t)], 1)
    hole = np.stack([120 + 20 * np.cos(t), 90 + 15 * np.sin(t)], 1)
    write_asap_xml(tmp_path / "a.xml", [poly], [hole])
    ann = read_asap_xml(tmp_path / "a.xml")
    assert len(ann.tumour) == 1 and len(ann.exclusion) == 1 and np.allclose(ann.tumour[0], poly, atol=1e-4)
    ref = independent_mask(ann, 256, 200)
    assert np.array_equal(rasterize(ann, 0, 0, 256, 200), ref)
    assert np.array_equal(rasterize(ann, 37, 21, 100, 70), ref[21:91, 37:137])
    fr = grid_fractions(ann, (256, 200), 32)
    for (x, y), f in fr.items():
        assert f == pytest.approx(ref[y:y + 32, x:x + 32].mean())
    assert sum(f * 32 * 32 for f in fr.values()) == pytest.approx(ref[:192, :256].sum())
    # CAMELYON17 group names and decimal commas
    text = (tmp_path / "a.xml").read_text().replace('PartOfGroup="_2"', 'PartOfGroup="Exclusion"')
    (tmp_path / "b.xml").write_text(text.replace('X="120.', 'X="120,'))
    assert len(read_asap_xml(tmp_path / "b.xml").exclusion) == 1
    (tmp_path / "bad.xml").write_text("<ASAP_Annotations><Annotations>")
    with pytest.raises(DatasetError, match="not valid XML"):
        read_asap_xml(tmp_path / "bad.xml")


def test_metastatic_patches_match_the_independent_mask(camelyon):
    out, truth = camelyon["out"], camelyon["truth"]
    scans = {s: pd.read_csv(out / "scan" / f"{s}.csv") for s in ("tumor_001", "tumor_002", "test_001")}
    for name, scan in scans.items():
        mask = independent_mask(truth[name], *SIZE)
        expected = {}
        for y in range(0, SIZE[1] - PATCH + 1, PATCH):
            for x in range(0, SIZE[0] - PATCH + 1, PATCH):
                f = mask[y:y + PATCH, x:x + PATCH].mean()
                if f >= CFG.p0:
                    expected[(x, y)] = f
        got = {(int(x), int(y)): f for x, y, f in zip(scan["x"], scan["y"], scan["p_m"])}
        assert got.keys() == expected.keys() and len(got) > 0  # the toy tumours lie inside tissue
        assert all(got[k] == pytest.approx(expected[k], abs=1e-12) for k in got)
    met = pd.read_csv(out / "metastatic.csv")
    assert ((met["category"] == 1) == ((met["p_m"] >= CFG.p0) & (met["p_m"] <= CFG.p1))).all()
    assert ((met["category"] == 2) == (met["p_m"] > CFG.p1)).all()
    for origin, names in (("train", ["tumor_001", "tumor_002"]), ("test", ["test_001"])):
        cand = pd.concat([scans[n] for n in names])
        n1 = int(((cand["p_m"] >= CFG.p0) & (cand["p_m"] <= CFG.p1)).sum())
        n2 = int((cand["p_m"] > CFG.p1).sum())
        part = met[met["origin"] == origin]
        assert (part["category"] == 1).sum() == n1  # every category-1 patch kept
        assert (part["category"] == 2).sum() == min(n2, round(n1 * CFG.pn))
        c = camelyon["summary"]["table_2_4"][origin]
        assert (c["before_category1"], c["before_category2"], c["after_total"]) == (n1, n2, len(part))


def test_calibration_picks_bins_uniformly():
    p_m = np.concatenate([np.full(1000, 0.97), np.full(20, 0.57), np.full(200, 0.3)])
    cand = pd.DataFrame({"slide": "s", "x": np.arange(len(p_m)), "y": 0, "p_m": p_m, "p_t": 1.0})
    kept = calibrate(cand, ProtocolConfig(pn=0.15), np.random.default_rng(0))
    cat2 = kept[kept["category"] == 2]
    assert len(cat2) == 30 and (kept["category"] == 1).sum() == 200
    # patch-uniform sampling would give about 0.6 patches from the small bin; bin-uniform about 15
    assert 10 <= (cat2["p_m"] == 0.57).sum() <= 20


def test_normal_patches_and_slide_level_folds(camelyon):
    out = camelyon["out"]
    slides = pd.read_csv(out / "slides.csv", keep_default_na=False)
    assert slides.set_index("slide").loc["tumor_003", "excluded"] != ""
    assert camelyon["summary"]["excluded"] == ["tumor_003"]
    for k in range(CFG.n_folds):
        tables = {s: pd.read_csv(out / "folds" / f"fold_{k}" / f"{s}.csv", keep_default_na=False)
                  for s in ("train", "valid", "test")}
        seen = {}
        for split, t in tables.items():
            for slide in t["slide"].unique():
                assert seen.setdefault(slide, split) == split  # no slide in two sets
            assert set(t.loc[t["label"] == 1, "slide"]) <= {"tumor_001", "tumor_002", "test_001"}
            assert set(t.loc[t["label"] == 0, "slide"]) <= {"normal_001", "normal_002", "normal_003", "test_002"}
            n_m, normal = int((t["label"] == 1).sum()), t[t["label"] == 0]
            if n_m and len(normal):
                assert len(normal) == n_m  # as many normal patches as metastatic ones
                per = normal.groupby("slide").size()
                assert per.max() - per.min() <= 1  # spread evenly over the normal slides
            assert not normal.duplicated(["slide", "x", "y"]).any()
        assert set(tables["test"]["slide"]) <= {"test_001", "test_002"}
    # normal patches have tissue: judged here by colour (background is grey 244, tissue pink)
    with open_slide(camelyon["slides"] / "train" / "normal_001.tif", backend="tifffile") as s:
        t = pd.read_csv(out / "folds" / "fold_0" / "train.csv", keep_default_na=False)
        for x, y in t.loc[t["slide"] == "normal_001", ["x", "y"]].itertuples(index=False):
            assert (s.read_region((int(x), int(y)), 0, (PATCH, PATCH))[..., 1] < 215).mean() >= CFG.pt


def test_pngs_dataset_and_reading_from_slides(camelyon):
    out, truth = camelyon["out"], camelyon["truth"]
    ds = Camelyon16Patches(out, "train", fold=0)
    labels = ds.labels
    i_met, i_nor = int(np.flatnonzero(labels == 1)[0]), int(np.flatnonzero(labels == 0)[0])
    s = ds[i_met]
    row = ds.table.iloc[i_met]
    x, y = int(row["x"]), int(row["y"])
    mask = independent_mask(truth[row["slide"]], *SIZE)[y:y + PATCH, x:x + PATCH]
    assert s["image"].shape == (3, PATCH, PATCH) and torch.equal(s["mask"], torch.from_numpy(mask).float())
    assert float(s["mask"].mean()) == pytest.approx(row["p_m"])
    assert ds[i_nor]["mask"].sum() == 0
    # without the PNGs, the same patch comes straight from the slide
    (out / row["path"]).rename(out / (row["path"] + ".bak"))
    (out / row["mask_path"]).rename(out / (row["mask_path"] + ".bak"))
    try:
        again = Camelyon16Patches(out, "train", fold=0, backend="tifffile")[i_met]
        assert torch.equal(again["image"], s["image"]) and torch.equal(again["mask"], s["mask"])
    finally:
        (out / (row["path"] + ".bak")).rename(out / row["path"])
        (out / (row["mask_path"] + ".bak")).rename(out / row["mask_path"])
    with pytest.raises(DatasetError, match="advwsl data camelyon16"):
        Camelyon16Patches(out / "nothing", "train")


def test_deterministic_resumable_parallel_and_cli(camelyon):
    from click.testing import CliRunner

    from advwsl.cli import main

    out = camelyon["out"]
    before = {p: p.stat().st_mtime_ns for p in (out / "scan").glob("*.csv")}
    prepare_camelyon16(camelyon["slides"], camelyon["anns"], out, config=CFG, workers=1, progress=False)
    assert {p: p.stat().st_mtime_ns for p in (out / "scan").glob("*.csv")} == before  # resumed, not redone
    with pytest.raises(DatasetError, match="other settings"):
        prepare_camelyon16(camelyon["slides"], camelyon["anns"], out, config=ProtocolConfig(patch_size=PATCH),
                           progress=False)
    other = camelyon["root"] / "cli"
    result = CliRunner().invoke(main, ["data", "camelyon16", "--slides", str(camelyon["slides"]), "--annotations",
                                       str(camelyon["anns"]), "--out", str(other), "--patch-size", str(PATCH),
                                       "--n-folds", "2", "--pn", "0.5", "--workers", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "before calibration" in result.output and "tumor_003" in result.output
    for k in range(2):
        for split in ("train", "valid", "test"):
            a = pd.read_csv(out / "folds" / f"fold_{k}" / f"{split}.csv")
            b = pd.read_csv(other / "folds" / f"fold_{k}" / f"{split}.csv")
            pd.testing.assert_frame_equal(a, b)  # same seed, 2 processes and another reader: same patches
    bad = CliRunner().invoke(main, ["data", "camelyon16", "--slides", str(camelyon["root"] / "none"),
                                    "--annotations", str(camelyon["anns"]), "--out", str(other / "x")])
    assert bad.exit_code == 2 and "does not exist" in bad.output
