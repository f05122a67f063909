"""``data camelyon16`` checks before writing: a damaged annotation, a patch larger than every slide, an
``--out`` of another command (or a folder advwsl did not write) or of other settings is refused with nothing
written; a run that draws no patch is an error, not an empty dataset with exit status 0."""

from __future__ import annotations

import json

import pytest

from advwsl.data.camelyon16.prepare import prepare_camelyon16
from advwsl.data.camelyon16.sampling import ProtocolConfig
from advwsl.data.camelyon16.toy import make_toy_slide
from advwsl.errors import AdvwslError, ConfigError, DatasetError, InputError
from advwsl.runs import INCOMPLETE, create_run_dir, incomplete_record, mark_complete

CFG = ProtocolConfig(patch_size=64, n_folds=2, pn=0.5, seed=0)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("c16")
    slides, anns = root / "slides", root / "annotations"
    slides.mkdir()
    anns.mkdir()
    for i, name in enumerate(["tumor_001", "normal_001", "normal_002", "test_001"]):
        tumour = not name.startswith("normal")
        make_toy_slide(slides / f"{name}.tif", anns / f"{name}.xml" if tumour else None, size=(384, 256), seed=i,
                       tumour=tumour, levels=3)
    return root, slides, anns


def _files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _prepare(toy, out, cfg=CFG):
    _, slides, anns = toy
    return prepare_camelyon16(slides, anns, out, config=cfg, progress=False, backend="tifffile")


def test_a_damaged_annotation_is_refused_before_anything_is_written(toy, tmp_path):
    import shutil

    root, slides, anns = toy
    bad = tmp_path / "annotations"
    shutil.copytree(anns, bad)
    (bad / "tumor_001.xml").write_text("<ASAP_Annotations><Annotations><Annot")
    with pytest.raises(DatasetError, match="tumor_001.xml is not valid XML"):
        prepare_camelyon16(slides, bad, tmp_path / "out", config=CFG, progress=False, backend="tifffile")
    assert not (tmp_path / "out").exists()


def test_a_patch_larger_than_every_slide_is_refused_before_anything_is_written(toy, tmp_path):
    with pytest.raises(InputError, match="patch size 100000 is larger than every slide.*384 x 256") as info:
        _prepare(toy, tmp_path / "out", ProtocolConfig(patch_size=100000, n_folds=2))
    assert "--patch-size" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_a_run_that_draws_no_patch_is_an_error(toy, tmp_path):
    """Normal slides only: no metastatic patch, so no normal patch to balance them; nothing to train on."""
    import shutil

    root, slides, anns = toy
    (tmp_path / "slides").mkdir()
    for name in ("normal_001.tif", "normal_002.tif"):
        shutil.copy(slides / name, tmp_path / "slides" / name)
    with pytest.raises(DatasetError, match="no patch was drawn from the 2 slide"):
        prepare_camelyon16(tmp_path / "slides", anns, tmp_path / "out", config=CFG, progress=False,
                           backend="tifffile")
    assert "no patch was drawn" in (tmp_path / "out" / INCOMPLETE).read_text()


def test_the_run_of_another_command_is_refused_untouched(toy, tmp_path):
    finished = create_run_dir("attack", tmp_path / "finished")
    mark_complete(finished)
    (finished / "ddn.csv").write_text("results")
    interrupted = create_run_dir("train", tmp_path / "interrupted")
    for out, message in ((finished, "holds other files"), (interrupted, "pid")):
        before = _files(out)
        with pytest.raises(AdvwslError, match=message):
            _prepare(toy, out)
        assert _files(out) == before
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / INCOMPLETE).touch()
    (stray / "mine.txt").write_text("mine")
    with pytest.raises(ConfigError, match="advwsl did not write"):
        _prepare(toy, stray)
    assert _files(stray) == {INCOMPLETE: b"", "mine.txt": b"mine"}


def test_a_finished_output_resumes_and_other_settings_change_nothing(toy, tmp_path):
    out = tmp_path / "out"
    summary = _prepare(toy, out)
    assert sum(v["metastatic"] + v["normal"] for v in summary["sets"].values()) > 0
    assert not (out / INCOMPLETE).exists() and json.loads((out / "config.json").read_text())["patch_size"] == 64
    before = _files(out)
    with pytest.raises(DatasetError, match="other settings"):
        _prepare(toy, out, ProtocolConfig(patch_size=32, n_folds=2, pn=0.5))
    assert _files(out) == before  # no INCOMPLETE, no new folder in the finished output
    assert _prepare(toy, out) == summary
    assert not (out / INCOMPLETE).exists()


def test_an_interrupted_run_is_marked_for_its_own_command(toy, tmp_path, monkeypatch):
    import advwsl.data.camelyon16.prepare as prepare

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare, "_write_fold_csvs", interrupt)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        _prepare(toy, out)
    record = incomplete_record(out)
    assert record["command"] == "data camelyon16" and record["ended"] == "interrupted"
    with pytest.raises(ConfigError, match="rerun the same command"):  # another command leaves it alone
        create_run_dir("attack", out)
    monkeypatch.undo()
    assert _prepare(toy, out)["png"] is False and not (out / INCOMPLETE).exists()
