"""``report.html``: one self-contained page per run directory (no network resource), with the run's tables,
figures and configuration — and it renders in a real headless browser (Chromium, skipped where absent)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from advwsl.plotting import plot_sweep
from advwsl.report_html import markdown_to_html, write_html_report


def _run_dir(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.md").write_text("Model: demo\n\n| Attack | Success (%) |\n|---|---:|\n| DDN | 100.0 |\n\n"
                                    "- **Note**: `cams.csv` holds the rest\n")
    (run / "config.json").write_text(json.dumps({"run": {"command": "attack"}, "config": {"steps": 100}}))
    import pandas as pd

    plot_sweep(pd.DataFrame({"method": ["a", "a"], "x": [1, 2], "accuracy": [0.5, 0.7]}), run / "figure.png",
               measures=["accuracy"])
    return run


def test_the_page_holds_the_tables_figures_and_configuration_inline(tmp_path):
    run = _run_dir(tmp_path)
    page = write_html_report(run, "advwsl attack: demo").read_text()
    assert "<table>" in page and "<td>100.0</td>" in page and "<b>Note</b>" in page and "<code>cams.csv</code>" in page
    assert "data:image/png;base64," in page and "&quot;steps&quot;: 100" in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "no network resource"
    assert markdown_to_html("# Title\n\ntext") == "<h2>Title</h2>\n<p>text</p>"


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium is not installed (Debian package chromium)")
def test_the_page_renders_in_a_headless_browser(tmp_path):
    run = _run_dir(tmp_path)
    path = write_html_report(run, "advwsl attack: demo")
    out = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", path.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    dom = out.stdout
    assert "<title>advwsl attack: demo</title>" in dom and "<td>100.0</td>" in dom and "figure.png" in dom
    shot = tmp_path / "page.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1200,900", path.as_uri()], capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 5000
