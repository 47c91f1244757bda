"""The benchmark's report in its output folder: ``results.json``, ``table.md``, figures and ``index.html``.

Everything is made from the results dict (``run_benchmark``'s return value, the content of ``results.json``)
and the images cached beside it, so a report can be rebuilt from a finished run. The HTML is static and
links its images by relative path: the folder can be moved or published as is.
"""
from __future__ import annotations

import html
from pathlib import Path

from ..io import ImageError, atomic_write, hr_files
from .figures import comparison_grid, steps_plot
from .runner import write_json
from .scenarios import ground_truth, read_rgb


def _num(value, digits: int, signed: bool = False) -> str:
    return "—" if value is None else f"{value:{'+' if signed else ''}.{digits}f}"


def _secs(value) -> str:
    return "—" if value is None else f"{value:.3g}"


def _elsewhere(device: str, here: str) -> str:
    """`` (device)`` after a time measured on another device than the run's, else nothing."""
    return "" if device == here else f" ({device})"


def _seconds(cell: dict, repeats: int) -> str:
    return _secs(cell["seconds"]) + (f" ± {cell['seconds_std']:.2g}" if repeats > 1 else "")


def quality_table(results: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows: ours | paper | Δ for PSNR and SSIM, per (scenario, set, method)."""
    header = ["scenario", "set", "method", "images", "PSNR", "paper", "Δ", "SSIM", "paper", "Δ", "s / image"]
    here, rows = results["benchmark"]["device"], []
    for c in results["cells"]:
        head = [c["scenario"], c["set"], c["label"]]
        if c["status"] != "done":
            rows.append(head + ["—", f"skipped: {c['reason']}"] + [""] * 6)
            continue
        paper, delta = c["paper"] or {}, c["delta"] or {}
        rows.append(head + [str(c["n_images"]) + ("" if c["complete"] else " (part)"),
                            _num(c["psnr"], 2), _num(paper.get("psnr"), 2), _num(delta.get("psnr"), 2, True),
                            _num(c["ssim"], 4), _num(paper.get("ssim"), 4), _num(delta.get("ssim"), 4, True),
                            _seconds(c, results["benchmark"]["repeats"]) + _elsewhere(c.get("device", here), here)])
    return header, rows


def speed_table(results: dict) -> tuple[list[str], list[list[str]]]:
    """Seconds per image of each method, marked with its device where that is not the run's, and the
    ZSSR / MZSR(10) time ratio (same device only)."""
    methods, here = results["methods"], results["benchmark"]["device"]
    header = ["set", "scenario"] + [m["label"] for m in methods.values()] + ["ZSSR / MZSR(10)"]
    rows = []
    for r in results["speed"]:
        ratio, devices = r["zssr_over_mzsr10"], r.get("devices", {})
        rows.append([r["set"], r["scenario"]]
                    + [_secs(r["seconds"].get(m)) + _elsewhere(devices.get(m, here), here) for m in methods]
                    + ["—" if ratio is None else f"{ratio:.1f}×"])
    return header, rows


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _title(results: dict) -> str:
    return f"MZSR benchmark ×{results['benchmark']['scale']}"


def _caption(results: dict) -> str:
    b = results["benchmark"]
    n = b["limit"]
    limit = ("all images" if n is None else "the images column's count" if n == "mixed"
             else f"the first {n} image{'s' if n > 1 else ''} of each set")
    # the device's label names its fast path, which only our schedule takes
    paths: dict[str, list[str]] = {}
    for m in results["methods"].values():
        if "path" in m:
            paths.setdefault(m["path"], []).append(m["label"])
    computed = "; ".join(f"{', '.join(labels)} in {path}" for path, labels in paths.items())
    return (f"Y-channel PSNR (dB) / SSIM, shave {b['scale']} (spec §6), on {limit}; the paper's values are "
            f"whole-set means. {b['repeats']} timed run(s) per image on {b['device']}, {b['threads']} threads, "
            f"torch {b['torch']}" + (f"; {computed}." if computed else "."))


def markdown(results: dict) -> str:
    parts = [f"# {_title(results)}\n", _caption(results) + "\n", "## Quality\n", _markdown(*quality_table(results)),
             "## Speed (seconds per image)\n", _markdown(*speed_table(results))]
    return "\n".join(parts)


def _steps_figure(results: dict, out: Path) -> str | None:
    curve = results["curve"]
    if not curve or "skipped" in curve:
        return None
    bicubic = [i["psnr"] for c in results["cells"] if c["status"] == "done" and c["method"] == "bicubic"
               and (c["set"], c["scenario"]) == (curve["set"], curve["scenario"])
               for i in c["images"] if i["image"] == curve["image"]]
    steps_plot(out / "steps.png", curve["steps"],
               {"MZSR (meta-learned weights)": curve["mzsr"], "fine-tuning (pretrained weights)": curve["finetune"]},
               f"{curve['set']} {curve['scenario']} {curve['image']}: PSNR vs steps",
               {"bicubic": bicubic[0]} if bicubic else None)
    return "steps.png"


def _local_hr(set_name: str, record: dict) -> Path | None:
    """The record's HR image in this machine's $MZSR_DATA (its recorded path may be another machine's)."""
    try:
        return next(p for p in hr_files(set_name) if p.stem == record["image"])
    except (ImageError, StopIteration):
        return Path(record["hr"]) if Path(record["hr"]).is_file() else None


def _grid_figures(results: dict, out: Path) -> list[tuple[str, str]]:
    """One grid per scenario, on the first image of the first set: [(scenario, file name)].

    Outputs no longer in the folder (pooled from elsewhere, or not kept) leave their panel out.
    """
    scale, first_set = results["benchmark"]["scale"], results["benchmark"]["sets"][0]
    grids = []
    for scenario in results["benchmark"]["scenarios"]:
        # the paper's methods only (as in its figures): fine-tuning variants would crowd the row
        done = [c for c in results["cells"] if c["status"] == "done" and c["paper_method"]
                and (c["set"], c["scenario"]) == (first_set, scenario)]
        if not done:
            continue
        first = min((c["images"][0] for c in done), key=lambda i: i["image"])
        shown = [(c, i) for c in done for i in c["images"][:1] if i["image"] == first["image"]
                 and (out / i["sr"]).is_file()]
        hr = _local_hr(first_set, first)
        if not shown or hr is None or not (out / first["lr"]).is_file():
            continue
        panels = [(f"{c['label']}\n{i['psnr']:.2f} dB", read_rgb(out / i["sr"])) for c, i in shown]
        name = f"grid-{scenario}.png"
        comparison_grid(out / name, read_rgb(out / first["lr"]), ground_truth(hr, scale), panels, scale,
                        f"{first_set} {scenario} {first['image']} ×{scale}")
        grids.append((scenario, name))
    return grids


STYLE = ("body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}"
         "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}img{max-width:100%}")


def _html(results: dict, steps: str | None, grids: list[tuple[str, str]]) -> str:
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(_title(results))}</title>"
             f"<style>{STYLE}</style></head><body><h1>{esc(_title(results))}</h1>",
             f"<p>{esc(_caption(results))}</p>",
             "<p>Data: <a href='results.json'>results.json</a> · <a href='table.md'>table.md</a></p>",
             "<h2>Methods</h2><ul>"]
    parts += [f"<li><b>{esc(m['label'])}</b>: {esc(m['description'])}</li>" for m in results["methods"].values()]
    parts.append("</ul><h2>Scenarios and models</h2><ul>")
    for sid, s in results["scenarios"].items():
        model = s["model"] or f"none ({s['model_problem']})"
        blur = esc(s["kernels"]) if "kernels" in s else \
            f"λ1 {s['lambda1']}, λ2 {s['lambda2']}, θ {s['theta']}, {s['kernel_size']}×{s['kernel_size']}"
        real = f", noise σ {s['noise']:g} grey levels, JPEG {s['jpeg'] or 'none'}" if "noise" in s else ""
        parts.append(f"<li><b>{esc(sid)}</b> ({esc(s['paper_key'] or 'not in the paper')}): {blur}, "
                     f"{esc(s['downsample'])} subsampling{real}; model {esc(model)}</li>")
    parts += ["</ul><h2>Quality</h2>", _html_table(*quality_table(results)),
              "<h2>Speed (seconds per image)</h2>", _html_table(*speed_table(results))]
    if steps:
        parts.append(f"<h2>PSNR versus adaptation steps</h2><img src='{steps}' alt='PSNR versus steps'>")
    if grids:
        parts.append("<h2>Visual comparison</h2>")
        parts += [f"<h3>{esc(sid)}</h3><img src='{esc(name)}' alt='{esc(sid)} comparison'>" for sid, name in grids]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(results: dict, out) -> Path:
    """Write results.json, table.md, the figures and index.html into ``out``; returns the index path."""
    out = Path(out)
    write_json(out / "results.json", results)
    atomic_write(out / "table.md", lambda tmp: Path(tmp).write_text(markdown(results), encoding="utf-8"))
    page = _html(results, _steps_figure(results, out), _grid_figures(results, out))
    atomic_write(out / "index.html", lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    return out / "index.html"
