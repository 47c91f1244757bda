"""Run methods × test images for every (set, scenario), each result cached so that an interrupted run resumes.

Layout under the output folder (``<cell>`` = ``<set>/<scenario>-x<scale>``):
``inputs/<cell>/<stem>.png`` the degraded LR inputs; ``cells/<cell>/<method>/<stem>.png`` each SR output and
``<stem>.json`` its scores and seconds. A cached result is reused only when its ``key`` (the weights, seed,
repeats… that produced it) matches the current run's. The device is not part of the key: each result records
the device it ran on, so that costly cells (ZSSR) computed on a GPU can join a CPU run; the speed table shows
where each timing comes from and compares times only across one device. Scores follow spec §6 on uint8 RGB,
shave = scale.
"""
from __future__ import annotations

import json
import shutil
import time
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..api import Upscaler
from ..io import ImageError, atomic_write, hr_files, write_image
from ..metrics import psnr_y, ssim_y
from ..models import Model, ModelError, fingerprint, load_model
from ..realphoto import MAX_PATCHES, NOISE_FLOOR
from ..runtime import device_label, pick_device
from ..schedules import (AUTO_BACK_PROJECTION, AUTO_BACK_PROJECTION_CORRUPTED, AUTO_ENSEMBLE, AUTO_GUARD_MARGIN,
                         AUTO_LARGE_SCALE_CORRUPT_FROM, AUTO_PATIENCE, AUTO_SON_NOISE_SHARE, AUTO_SUMMARY,
                         AUTO_TAIL_MAX_SCALE, AUTO_TIME_LIMIT)
from ..zssr import REVISION as ZSSR_REVISION
from .curve import psnr_vs_steps
from .methods import Method, parse_method, run_method
from .scenarios import PAPER_SETS, Scenario, default_scenarios, degraded_input, get_scenario, ground_truth, paper_value

DEFAULT_METHODS = ("bicubic", "zssr", "finetune1", "finetune10", "finetune100", "mzsr1", "mzsr10")


@dataclass
class Weights:
    """The MZSR model of a scenario and its pretrained base; ``skip``/``base_skip`` say why one is missing."""

    model: Model | None = None
    base: Model | None = None
    skip: str | None = None
    base_skip: str | None = None

    def reason(self, method: Method) -> str | None:
        """Why ``method`` cannot run with these weights, or ``None``."""
        if not method.needs_model:
            return None
        return self.skip or (self.base_skip if method.kind == "finetune" else None)

    @cached_property
    def prints(self) -> dict:
        """Fingerprints of the model and its base, hashed once."""
        return {"model": fingerprint(self.model), "base": self.base and fingerprint(self.base)}


def with_base(model: Model, device) -> Weights:
    """``model`` and the pretrained weights its card names as ``base``."""
    base = model.card.get("base")
    if base is None:
        return Weights(model, base_skip=f"model '{model.name}' names no pretrained 'base' in its card")
    try:
        return Weights(model, load_model(base, device))
    except ModelError as e:
        return Weights(model, base_skip=f"pretrained base of '{model.name}': {e}")


def default_weights(scale: int, scenario: Scenario, device, loaded: dict) -> Weights:
    """The model ``mzsr upscale`` would adapt for the scenario's kernel and subsampling (with its base),
    memoised by name in ``loaded``. A scenario with a kernel per image (DIV2KRK's) gets the scale's default model:
    one model per table."""
    kernel = None if scenario.kernels else scenario.kernel()
    try:
        model = Upscaler(scale, kernel, downsample=scenario.downsample, device=device).model_for(kernel)
    except ModelError as e:
        return Weights(skip=str(e))
    if model.name not in loaded:
        loaded[model.name] = with_base(model, device)
    return loaded[model.name]


@dataclass(frozen=True)
class Options:
    """How each cell runs: ``repeats`` timed runs, ZSSR's ``seed`` and iteration cap, the torch ``device``."""

    repeats: int = 1
    seed: int = 0
    zssr_iters: int | None = None
    device: str = "cpu"

    def key(self, method: Method, weights: Weights) -> dict:
        """Everything besides the inputs and the device that a cached result of ``method`` depends on."""
        key = {"method": method.name, "repeats": self.repeats}
        if method.kind == "zssr":
            key.update(seed=self.seed, zssr_iters=self.zssr_iters, revision=ZSSR_REVISION)
        if method.needs_model:
            key["model"] = weights.prints["model"]
        if method.kind == "finetune":
            key["base"] = weights.prints["base"]
        if method.needs_model and not method.auto:
            key["son"] = "clean"  # the paper's recipe: cells without this may have given the son the noise read
        elif method.needs_model:  # our schedule changes with its constants
            key["recipe"] = {"summary": AUTO_SUMMARY, "time_limit": AUTO_TIME_LIMIT, "patience": AUTO_PATIENCE,
                             "ensemble": AUTO_ENSEMBLE, "back_projection": AUTO_BACK_PROJECTION,
                             "back_projection_corrupted": AUTO_BACK_PROJECTION_CORRUPTED,
                             "son_noise_share": AUTO_SON_NOISE_SHARE, "tail_max_scale": AUTO_TAIL_MAX_SCALE,
                             "guard_margin": AUTO_GUARD_MARGIN,
                             "large_scale_corrupt_from": AUTO_LARGE_SCALE_CORRUPT_FROM, "seed": self.seed,
                             "noise_estimate": {"floor": NOISE_FLOOR, "patches": MAX_PATCHES}}
        return key


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8"))


def run_cell(method: Method, lr: np.ndarray, gt: np.ndarray, scale: int, scenario: Scenario, weights: Weights,
             opts: Options, base_path: Path, callback=None, hr: Path | None = None) -> dict:
    """One method on one image, ``opts.repeats`` times → ``base_path``.png (SR) and .json (psnr, ssim, seconds, key)."""
    png, js, key = base_path.with_suffix(".png"), base_path.with_suffix(".json"), opts.key(method, weights)
    cached = read_json(js)
    if cached is not None and cached.get("key") == key and png.is_file():
        return cached
    seconds, sr = [], None
    for _ in range(opts.repeats):
        t0 = time.perf_counter()
        out = run_method(method, lr, scale, scenario.kernel(hr, scale), scenario.downsample, weights.model,
                         weights.base, opts.device, opts.zssr_iters, opts.seed, callback)
        seconds.append(time.perf_counter() - t0)
        if sr is None:
            sr = out
        elif not np.array_equal(out, sr):  # e.g. nondeterministic GPU kernels; the first output is scored
            warnings.warn(f"{method.name} on {base_path.name}: repeated runs gave different outputs", stacklevel=2)
    write_image(png, sr)
    record = {"psnr": psnr_y(sr, gt, scale), "ssim": ssim_y(sr, gt, scale), "seconds": seconds,
              "device": device_label(opts.device), "key": key}
    write_json(js, record)
    return record


def _summarise(cell: dict, records: list[dict], set_size: int, paper: dict | None) -> dict:
    """Means over the images; seconds per image as mean ± std over the repeats."""
    per_repeat = np.mean([r["seconds"] for r in records], axis=0)
    devices = sorted({r["device"] for r in records})
    cell.update(status="done", device=devices[0] if len(devices) == 1 else "mixed: " + ", ".join(devices),
                n_images=len(records), set_size=set_size, complete=len(records) == set_size,
                psnr=float(np.mean([r["psnr"] for r in records])), ssim=float(np.mean([r["ssim"] for r in records])),
                seconds=float(per_repeat.mean()), seconds_std=float(per_repeat.std()), paper=paper)
    cell["delta"] = None if paper is None else {"psnr": cell["psnr"] - paper["psnr"],
                                                "ssim": cell["ssim"] - paper["ssim"]}
    return cell


def speed_rows(cells: list[dict]) -> list[dict]:
    """Seconds per image of each method (and its device) per (set, scenario), and how many times slower ZSSR
    is than MZSR(10) — only where both ran on the same device, since a GPU/CPU ratio says nothing."""
    rows: dict[tuple[str, str], dict] = {}
    for c in cells:
        if c["status"] == "done":
            row = rows.setdefault((c["set"], c["scenario"]),
                                  {"set": c["set"], "scenario": c["scenario"], "seconds": {}, "devices": {}})
            row["seconds"][c["method"]], row["devices"][c["method"]] = c["seconds"], c["device"]
    for row in rows.values():
        s, d = row["seconds"], row["devices"]
        same = "zssr" in s and "mzsr10" in s and d["zssr"] == d["mzsr10"]
        row["zssr_over_mzsr10"] = s["zssr"] / s["mzsr10"] if same else None
    return list(rows.values())


def cell_dir(set_name: str, scenario: Scenario, scale: int) -> str:
    """Where one set under one scenario keeps its inputs and results, relative to ``inputs/`` and ``cells/``."""
    return f"{set_name}/{scenario.id}-x{scale}"


def run_scenario(out: Path, set_name: str, hrs: list[Path], set_size: int, scenario: Scenario, scale: int,
                 methods: list[Method], weights: Weights, opts: Options, bar) -> list[dict]:
    """Every method on every image of one set under one scenario; one summary cell per method."""
    here = cell_dir(set_name, scenario, scale)
    records: dict[str, list] = {m.name: [] for m in methods}
    for hr in hrs:
        lr = degraded_input(hr, scenario, scale, out / "inputs" / here)
        gt = ground_truth(hr, scale)
        for m in methods:
            where = f"{here} {m.name} {hr.stem}"
            bar.set_postfix_str(where)
            if weights.reason(m) is None:
                rec = run_cell(m, lr, gt, scale, scenario, weights, opts, out / "cells" / here / m.name / hr.stem,
                               lambda i, loss: bar.set_postfix_str(f"{where} step {i + 1}"), hr)
                records[m.name].append({"image": hr.stem, "hr": str(hr), "lr": f"inputs/{here}/{hr.stem}.png",
                                        "sr": f"cells/{here}/{m.name}/{hr.stem}.png",
                                        **{k: rec[k] for k in ("psnr", "ssim", "seconds")},
                                        "device": rec.get("device", "unknown")})
            bar.update()
    cells = []
    for m in methods:
        cell = {"set": set_name, "scenario": scenario.id, "method": m.name, "label": m.label,
                "paper_method": m.paper_name}
        if weights.reason(m):
            cells.append({**cell, "status": "skipped", "reason": weights.reason(m)})
        else:
            paper = paper_value(scale, scenario, set_name, m.paper_name)
            cells.append({**_summarise(cell, records[m.name], set_size, paper), "images": records[m.name]})
    return cells


def steps_curve(out: Path, set_name: str, scenario: Scenario, hr: Path, scale: int, weights: Weights, steps: int,
                device) -> dict:
    """PSNR after 0…``steps`` steps of MZSR and of fine-tuning on one image, cached in ``curve.json``."""
    where = {"set": set_name, "scenario": scenario.id, "image": hr.stem}
    if weights.skip or weights.base_skip:
        return {**where, "skipped": weights.skip or weights.base_skip}
    key = {**where, "steps": steps, "scale": scale, **weights.prints, "device": torch.device(device).type}
    cached = read_json(out / "curve.json")
    if cached is not None and cached.get("key") == key:
        return cached
    lr = degraded_input(hr, scenario, scale, out / "inputs" / cell_dir(set_name, scenario, scale))
    args = (lr, ground_truth(hr, scale), scenario.kernel(hr, scale), scale, scenario.downsample, steps, device)
    curve = {**where, "key": key, "steps": list(range(steps + 1)),
             "mzsr": psnr_vs_steps(weights.model, weights.model, *args),
             "finetune": psnr_vs_steps(weights.model, weights.base, *args)}
    write_json(out / "curve.json", curve)
    return curve


def _check_counts(limit, repeats, zssr_iters, curve_steps, shard) -> None:
    for name, value, least in (("limit", limit, 1), ("repeats", repeats, 1), ("zssr_iters", zssr_iters, 1),
                               ("curve_steps", curve_steps, 0)):
        if value is not None and value < least:
            raise ValueError(f"{name} must be ≥ {least}, got {value}")
    if shard is not None and not 0 <= shard[0] < shard[1]:
        raise ValueError(f"shard K/N needs 0 ≤ K < N, got {shard[0]}/{shard[1]}")


def select_images(files: list[Path], shard: tuple[int, int] | None) -> list[Path]:
    """Shard ``(k, n)`` keeps every n-th image from the k-th: n runs (processes, machines) share a set."""
    return files if shard is None else files[shard[0]::shard[1]]


def run_benchmark(out, sets=PAPER_SETS, scenarios=None, methods=DEFAULT_METHODS, scale: int = 2, model=None,
                  limit: int | None = None, repeats: int = 1, seed: int = 0, device: str = "auto",
                  zssr_iters: int | None = None, curve_steps: int = 20, shard: tuple[int, int] | None = None) -> dict:
    """Score ``methods`` on the first ``limit`` images of each set under each scenario; returns the results.

    ``scenarios`` default to the paper's for the scale; ``model`` (name, path or ``Model``) defaults to the
    shipped model for the scale and each scenario's subsampling. Methods whose model is missing are reported
    as skipped. ``seed`` seeds ZSSR (the other methods are deterministic); ``zssr_iters`` caps its training.
    ``curve_steps`` > 0 adds the PSNR-versus-steps data on the first image of the first set, under the first
    scenario that has its models, when a model-based method is benchmarked. ``shard`` ``(k, n)`` runs only
    every n-th of those images from the k-th; :func:`merge_results` joins the shards' results.
    """
    out = Path(out)
    _check_counts(limit, repeats, zssr_iters, curve_steps, shard)
    parsed = [parse_method(m) for m in dict.fromkeys(methods)]
    scens = [get_scenario(s) for s in dict.fromkeys(scenarios or default_scenarios(scale))]
    files = {s: select_images(hr_files(s, limit), shard) for s in dict.fromkeys(sets)}
    set_sizes = {s: len(hr_files(s)) for s in files}
    opts = Options(repeats, seed, zssr_iters, str(pick_device(device)))
    if model is not None and not isinstance(model, Model):
        model = load_model(model, opts.device)
    if model is not None and model.scale != scale:
        raise ValueError(f"model '{model.name}' is a ×{model.scale} model, the benchmark is ×{scale}")
    given, loaded = (None if model is None else with_base(model, opts.device)), {}
    weights = {s.id: given or default_weights(scale, s, opts.device, loaded) for s in scens}
    cells = []
    with tqdm(total=sum(map(len, files.values())) * len(scens) * len(parsed), desc="benchmark", unit="run",
              disable=None) as bar:
        for set_name, hrs in files.items():
            for s in scens:
                cells += run_scenario(out, set_name, hrs, set_sizes[set_name], s, scale, parsed, weights[s.id], opts,
                                      bar)
    # the first scenario whose weights are all there: a missing shipped model should not cost the whole plot
    first_set = next(iter(files))
    first = next((s for s in scens if not (weights[s.id].skip or weights[s.id].base_skip)), scens[0])
    curve = None
    if curve_steps and any(m.needs_model for m in parsed):
        curve = steps_curve(out, first_set, first, files[first_set][0], scale, weights[first.id], curve_steps,
                            opts.device)
    return {"benchmark": {"scale": scale, "sets": list(files), "scenarios": [s.id for s in scens],
                          "methods": [m.name for m in parsed], "limit": limit, "shard": shard and list(shard),
                          "repeats": repeats, "seed": seed,
                          "zssr_iters": zssr_iters, "zssr_revision": ZSSR_REVISION, "device": device_label(opts.device), "torch": torch.__version__,
                          "threads": torch.get_num_threads()},
            "scenarios": {s.id: {**s.describe(), **_model_names(weights[s.id])} for s in scens},
            "methods": {m.name: {"label": m.label, "paper": m.paper_name, "description": m.describe(),
                                  "path": m.path(opts.device)}
                        for m in parsed},
            "cells": cells, "speed": speed_rows(cells), "curve": curve}


def _model_names(w: Weights) -> dict:
    prints = w.prints if w.model else {"model": None, "base": None}
    return {"model": w.model.name if w.model else None, "base": w.base.name if w.base else None,
            "model_problem": w.skip or w.base_skip,
            "digests": {k: v and v["sha256"] for k, v in prints.items()}}


def _union(*lists) -> list:
    return list(dict.fromkeys(x for xs in lists for x in xs))


CELL_FIELDS = ("set", "scenario", "method", "label", "paper_method")


def _limit_of(cells: list[dict], limit):
    """The report's image count: ``None`` (all images) when every cell is complete, else ``limit``, or "mixed"
    when no single limit explains the partial cells."""
    if all(c["complete"] for c in cells if c["status"] == "done"):
        return None
    return "mixed" if limit is None else limit


def _same_settings(previous: dict, results: dict, cell: dict) -> bool:
    """Whether ``cell``'s images in two runs came from the same weights and settings, so they can be pooled.

    Runs written before digests were recorded count as compatible: the folder's one-model rule covers them.
    """
    pb, b = previous["benchmark"], results["benchmark"]
    if pb.get("repeats") != b.get("repeats"):
        return False
    zssr = ("seed", "zssr_iters", "zssr_revision")
    if cell["method"].startswith("zssr") and [pb.get(k) for k in zssr] != [b.get(k) for k in zssr]:
        return False
    old, new = (r["scenarios"].get(cell["scenario"], {}).get("digests") for r in (previous, results))
    return old is None or new is None or cell["method"] == "bicubic" or old == new


def _pool(old: dict, new: dict) -> dict:
    """One cell from two runs' images of the same (set, scenario, method); ``new``'s win where both have one."""
    have = {i["image"] for i in new["images"]}
    images = sorted([i for i in old["images"] if i["image"] not in have] + new["images"], key=lambda i: i["image"])
    cell = {k: new[k] for k in CELL_FIELDS}
    return {**_summarise(cell, images, new["set_size"], new["paper"]), "images": images}


def merge_results(previous: dict | None, results: dict) -> dict:
    """``results`` plus what an earlier run in the same folder measured and this run did not, so that a report
    can grow scenario by scenario (a cheap method on a big set, a costly one on a few images) and image by image
    (shards of a set run by several processes or machines).

    A cell this run also measured keeps the earlier run's other images when both used the same weights and
    settings (else this run's cell replaces it). A previous run at another scale is dropped.
    """
    if not previous or previous.get("benchmark", {}).get("scale") != results["benchmark"]["scale"]:
        return results
    new = {(c["set"], c["scenario"], c["method"]): c for c in results["cells"]}
    pb, b = previous["benchmark"], results["benchmark"]
    order = {k: _union(pb[k], b[k]) for k in ("sets", "scenarios", "methods")}
    cells, grown = [], False
    for c in previous["cells"]:
        here = (c["set"], c["scenario"], c["method"])
        if here not in new:
            cells.append(c)
        elif "set_size" in new[here] and c["status"] == new[here]["status"] == "done" and \
                _same_settings(previous, results, c):
            new[here], grown = _pool(c, new[here]), True
    cells += new.values()
    cells.sort(key=lambda c: (order["sets"].index(c["set"]), order["scenarios"].index(c["scenario"]),
                              order["methods"].index(c["method"])))
    merged = len(cells) > len(results["cells"]) or grown
    limit = _limit_of(cells, b["limit"] if not merged or pb["limit"] == b["limit"] else "mixed")
    return {**results, "benchmark": {**b, **order, "limit": limit, "shard": None if merged else b.get("shard")},
            "scenarios": {**previous["scenarios"], **results["scenarios"]},
            "methods": {m: {**previous["methods"], **results["methods"]}[m] for m in order["methods"]},
            "cells": cells, "speed": speed_rows(cells), "curve": results["curve"] or previous.get("curve")}


def _recount(results: dict) -> dict:
    """Set sizes as this machine's $MZSR_DATA has them: shards run on machines that held part of a set."""
    sizes = {}
    for name in results["benchmark"]["sets"]:
        try:
            sizes[name] = len(hr_files(name))
        except ImageError:
            pass
    cells = [{**c, "set_size": sizes[c["set"]], "complete": c["n_images"] == sizes[c["set"]]}
             if c["status"] == "done" and c["set"] in sizes else c for c in results["cells"]]
    return {**results, "benchmark": {**results["benchmark"], "limit": _limit_of(cells, results["benchmark"]["limit"])},
            "cells": cells}


def pool_folders(out: Path, sources: list[Path]) -> dict:
    """Fold the benchmark folders ``sources`` (e.g. shards run on other machines) into ``out``: their cached
    inputs and outputs are copied in and their results merged, in order (later ones win); each set's size is
    then taken from this machine's data, which holds the whole set."""
    out, results = Path(out), read_json(Path(out) / "results.json")
    for src in map(Path, sources):
        found = read_json(src / "results.json")
        if found is None or "cells" not in found:
            raise ValueError(f"{src}: no benchmark results.json there")
        for tree in ("inputs", "cells"):
            if (src / tree).is_dir():
                shutil.copytree(src / tree, out / tree, dirs_exist_ok=True)
        results = merge_results(results, found)
    return _recount(results)


def model_scores(results: dict, name: str, digest: str | None = None) -> dict:
    """The finished cells of a benchmark that used model ``name`` (MZSR, and fine-tuning from its base), as
    ``{"<set> <scenario> x<scale>": {method label: {psnr, ssim, images, paper}}}`` for the model's card. With
    ``digest`` (``fingerprint(...)["sha256"]``) the weights decide, not the name: scenarios last run with other
    weights of that name are left out (a report keeps cells of earlier weights that a later run did not redo), and
    those run with these weights under another name (a run's ``best.safetensors`` before it ships) count."""
    scale, out = results["benchmark"]["scale"], {}
    for c in results["cells"]:
        scenario = results["scenarios"][c["scenario"]]
        ran = scenario.get("digests", {}).get("model")
        if c["status"] == "done" and (scenario["model"] == name if digest is None else ran == digest):
            paper = c["paper"] or {}
            out.setdefault(f"{c['set']} {c['scenario']} x{scale}", {})[c["label"]] = {
                "psnr": round(c["psnr"], 4), "ssim": round(c["ssim"], 4), "images": c["n_images"],
                "paper_psnr": paper.get("psnr"), "paper_ssim": paper.get("ssim")}
    return out
