"""One page to read a run: ``report.html`` in a run directory, self-contained (no network resource: figures
are embedded as data URIs, no script, no style sheet from elsewhere), built from what the run wrote — its
Markdown reports (``summary.md``, ``table.md``, ``metrics.md``), its figures (``*.png``), the configuration
it ran with (``config.json``) and the list of its files."""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

from .io import atomic_write_text

__all__ = ["write_html_report", "markdown_to_html"]

#: Markdown reports shown first, in this order; other ``.md`` files follow (per-attack rows excluded).
_FIRST = ("summary.md", "table.md", "metrics.md")
_STYLE = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
          "table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:3px 8px}"
          "td{text-align:right}td:first-child{text-align:left}th{background:#f3f3f3}"
          "img{max-width:100%;border:1px solid #eee;margin:0.5em 0}pre{background:#f7f7f7;padding:1em;"
          "overflow:auto;font-size:12px}h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}")


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _table(lines: list[str]) -> str:
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    head, body = rows[0], [r for r in rows[2:]]
    out = ["<table>", "<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body]
    return "\n".join(out + ["</table>"])


def markdown_to_html(text: str) -> str:
    """The Markdown advwsl writes (headings, tables, bullet lists, paragraphs, code blocks, bold and code
    spans) as HTML."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            j = next((k for k in range(i + 1, len(lines)) if lines[k].startswith("```")), len(lines))
            out.append(f"<pre>{html.escape(chr(10).join(lines[i + 1:j]))}</pre>")
            i = j + 1
        elif line.startswith("|"):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            out.append(_table(lines[i:j]) if j - i >= 2 else f"<p>{_inline(line)}</p>")
            i = j
        elif line.startswith("- "):
            j = i
            while j < len(lines) and lines[j].startswith("- "):
                j += 1
            out.append("<ul>" + "".join(f"<li>{_inline(x[2:])}</li>" for x in lines[i:j]) + "</ul>")
            i = j
        else:
            heading = re.match(r"^(#{1,4}) (.*)", line)
            if heading:
                level = len(heading.group(1)) + 1
                out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            elif line.strip():
                out.append(f"<p>{_inline(line)}</p>")
            i += 1
    return "\n".join(out)


def _figure(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}"><figcaption>' \
           f"{html.escape(path.name)}</figcaption></figure>"


def write_html_report(run_dir: str | Path, title: str) -> Path:
    """Write ``report.html`` into ``run_dir`` (see the module docstring) and return its path."""
    run_dir = Path(run_dir)
    markdown = [run_dir / n for n in _FIRST if (run_dir / n).is_file()]
    if not markdown:
        markdown = sorted(p for p in run_dir.glob("*.md"))
    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts += [markdown_to_html(p.read_text()) for p in markdown]
    figures = sorted(run_dir.glob("*.png"))
    if figures:
        parts += ["<h2>Figures</h2>", *(_figure(p) for p in figures)]
    config = run_dir / "config.json"
    if config.is_file():
        try:
            shown = json.dumps(json.loads(config.read_text()), indent=2)
        except json.JSONDecodeError:
            shown = config.read_text()
        parts += ["<h2>Configuration</h2>", f"<pre>{html.escape(shown)}</pre>"]
    files = sorted(p.name for p in run_dir.iterdir() if p.is_file() and p.name not in ("report.html", "INCOMPLETE"))
    parts += ["<h2>Files</h2>", "<ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in files) + "</ul>"]
    page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
    path = run_dir / "report.html"
    atomic_write_text(path, page, overwrite=True)
    return path
