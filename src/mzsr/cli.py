"""The ``mzsr`` command: argument parsing around the Python API.

Bad input ends in one line ``mzsr: error: <file>: <problem>`` and a non-zero exit, never a traceback; outputs
are written to a temporary file and renamed, and inputs are never overwritten.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .api import METHODS, _split
from .config import add_config_args, build_config
from .degrade import DOWNSAMPLING, check_corruption
from .estimate import DEFAULT_ESTIMATOR, ESTIMATORS, get_estimator
from .io import ImageError, discover_inputs, read_image, write_image
from .kernels import CONVENTIONS, KernelError, parse_kernel_spec
from .models import (NARROW_KERNEL_VAR, ModelError, available, default_model, load_model, model_for_kernel,
                     read_card)
from .runtime import pick_device


class CliError(Exception):
    """A problem with the command line itself (paths, names), reported as one line."""


EXPECTED = (CliError, ImageError, KernelError, ModelError, ValueError, RuntimeError, FileExistsError, OSError)


def _add_io_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders of images")
    p.add_argument("-o", "--out", required=True, type=Path, metavar="OUT_DIR", help="output folder")
    p.add_argument("-s", "--scale", type=int, default=2, choices=(2, 3, 4), help="scale factor (default 2)")
    p.add_argument("--downsample", choices=DOWNSAMPLING,
                   help="the degradation's subsampling: direct or bicubic (default: bicubic for --kernel bicubic, "
                        "else direct)")
    p.add_argument("--kernel-convention", choices=CONVENTIONS, default="auto",
                   help="of kernel files: auto (the .mat key decides: 'Kernel' = KernelGAN/ZSSR, shifted for their "
                        "block-centre sampling and re-centred here; anything else = MZSR), mzsr or kernelgan")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mzsr", description="Zero-shot super-resolution by meta-transfer "
                                     "learning (MZSR), with ZSSR, fine-tuning and bicubic baselines.")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("upscale", help="super-resolve images")
    _add_io_args(up)
    up.add_argument("--kernel", default="bicubic", metavar="SPEC",
                    help="blur kernel: a .mat/.npy/.png file, a folder of per-image kernels (<stem>.mat or "
                         "<stem>_kernel_x<s>.mat), iso:VAR, aniso:L1,L2,THETA, estimate (found in each image), "
                         "or bicubic (no blur; default)")
    up.add_argument("--estimator", metavar="NAME",
                    help=f"kernel estimator for --kernel estimate ({', '.join(ESTIMATORS)}; default "
                         f"{DEFAULT_ESTIMATOR})")
    up.add_argument("--steps", type=int, default=10, help="adaptation steps (default 10; 0 = plain inference)")
    up.add_argument("--back-projection", type=int, default=0, metavar="N",
                    help="end with N back-projection iterations, which make the output reproduce the input under "
                         "the kernel (default 0 = the paper's MZSR; 2 gained 0.3–0.8 dB on Set5 g^d_2.0)")
    up.add_argument("--self-ensemble", action="store_true",
                    help="median over the rotations/flips of the input that leave the kernel unchanged, as ZSSR "
                         "does (up to 8× the inference time; +0.34 dB for MZSR(10) on Set5 g^d_2.0)")
    up.add_argument("--method", choices=METHODS, default="mzsr", help="default mzsr")
    up.add_argument("--model", metavar="NAME|PATH", help="shipped model name or .safetensors path "
                    "(default follows -s, --downsample and each image's kernel: the narrow-kernel model at ×2 for "
                    f"a principal variance under {NARROW_KERNEL_VAR:g} px², else the scale's default)")
    up.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    up.add_argument("--tile", type=int, metavar="PX", help="tile size for memory-bounded processing")
    up.add_argument("--save-kernel", action="store_true", help="write the kernel used beside each output")
    up.add_argument("--gt", type=Path, metavar="DIR", help="ground-truth folder (matched by stem): report PSNR/SSIM")

    dg = sub.add_parser("degrade", help="make LR images: LR = (HR * k) subsampled + noise, then JPEG")
    _add_io_args(dg)
    dg.add_argument("--kernel", required=True, metavar="SPEC", help="as for upscale")
    dg.add_argument("--noise", type=float, default=0.0, metavar="SIGMA",
                    help="Gaussian noise σ in grey levels of 0..255, added before rounding (default 0)")
    dg.add_argument("--jpeg", type=int, metavar="QUALITY", help="then JPEG-compress at this quality (1..95); "
                    "the output PNG holds the decoded pixels")
    dg.add_argument("--seed", type=int, default=0, help="noise seed, combined with each file's name (default 0)")

    sub.add_parser("models", help="list the shipped models and their cards")
    _benchmark_parser(sub)
    _train_parsers(sub)
    return parser


def _shard(text: str) -> tuple[int, int]:
    k, sep, n = text.partition("/")
    if not (sep and k.isdigit() and n.isdigit()):
        raise argparse.ArgumentTypeError(f"expected K/N such as 0/4, got {text!r}")
    return int(k), int(n)


def _benchmark_parser(sub) -> None:
    from .bench import DEFAULT_METHODS
    from .bench.scenarios import PAPER_SETS, SCENARIOS

    bm = sub.add_parser("benchmark", help="re-measure the paper's tables: methods × blur scenarios × test sets, "
                        "with an HTML report")
    bm.add_argument("--sets", nargs="+", default=list(PAPER_SETS), metavar="SET",
                    help=f"test sets under $MZSR_DATA/benchmark (default: {' '.join(PAPER_SETS)})")
    bm.add_argument("--scenarios", nargs="+", metavar="ID",
                    help=f"of {', '.join(SCENARIOS)} (default: all at ×2, gd2.0 at ×4)")
    bm.add_argument("-s", "--scale", type=int, default=2, choices=(2, 3, 4), help="scale factor (default 2)")
    bm.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), metavar="METHOD",
                    help="bicubic, zssr, mzsrN, finetuneN (N steps; finetune ≥ 100 steps uses Adam 1e-4), "
                         "mzsrNbpB (then B back-projection iterations), mzsrNx8 / mzsrNbpBx8 (self-ensemble) "
                         f"(default: {' '.join(DEFAULT_METHODS)})")
    bm.add_argument("--model", metavar="NAME|PATH", help="MZSR model for every scenario (default: the shipped "
                    "one for -s and each scenario's subsampling; fine-tuning starts from its card's base)")
    bm.add_argument("--limit", type=int, metavar="N", help="only the first N images (sorted) of each set")
    bm.add_argument("--shard", type=_shard, metavar="K/N", help="only every N-th of those images from the K-th "
                    "(K from 0): N runs share the work, and their results.json files pool in one folder")
    bm.add_argument("--repeats", type=int, default=1, metavar="R", help="timed runs per image (default 1)")
    bm.add_argument("--seed", type=int, default=0, help="ZSSR's seed (default 0)")
    bm.add_argument("--out", type=Path, default=Path("benchmark-results"), metavar="DIR",
                    help="output folder, also the cache an interrupted run resumes from (default benchmark-results)")
    bm.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    bm.add_argument("--merge", nargs="+", type=Path, metavar="DIR", help="run nothing: pool these benchmark "
                    "folders (shards run elsewhere) into --out, images and cache included, and rebuild its report")
    bm.add_argument("--zssr-iters", type=int, metavar="N", help="cap ZSSR's training iterations (quick runs)")
    bm.add_argument("--curve-steps", type=int, default=20, metavar="N",
                    help="steps of the PSNR-versus-steps plot (default 20; 0 = none)")


def _train_parsers(sub) -> None:
    from .train.kernel import KernelConfig
    from .train.meta import MetaConfig
    from .train.pretrain import PretrainConfig

    train = sub.add_parser("train", help="train a model (stage 1: pretrain, stage 2: meta; kernel: the "
                                          "kernel predictor)")
    stages = train.add_subparsers(dest="stage", required=True)
    for name, cls, text in (("pretrain", PretrainConfig, "stage 1: bicubic pretraining"),
                            ("meta", MetaConfig, "stage 2: meta-transfer learning (MAML)"),
                            ("kernel", KernelConfig, "the kernel predictor of --estimator predictor")):
        p = stages.add_parser(name, help=text)
        add_config_args(p, cls)
        p.add_argument("--resume", action="store_true",
                       help="continue the run in --run-dir exactly, with its saved config (options given override it)")
        p.set_defaults(config_cls=cls)
    tu = stages.add_parser("tune-step-lrs", help="compare test-time step schedules on the validation set")
    tu.add_argument("weights", help="a model name or .safetensors path")
    add_config_args(tu, MetaConfig)
    ex = stages.add_parser("export", help="ship a trained model inside the package (weights + card)")
    ex.add_argument("weights", type=Path, help="a run's best.safetensors (its .json card beside it)")
    ex.add_argument("--name", required=True, help="shipped model name, e.g. direct-x2")
    ex.add_argument("--base", help="shipped bicubic-pretrained model it started from (for --method finetune)")
    ex.add_argument("--notes", help="a sentence for the card: what this model is and is not")
    ex.add_argument("--step-lrs", type=float, nargs="+", help="replace the card's test-time step learning rates")
    ex.add_argument("--results", type=Path, nargs="+", metavar="RESULTS_JSON",
                    help="benchmark results.json files whose cells for this model go into the card, next to the "
                         "paper (re-export a shipped model onto itself to add them)")


def _plan_outputs(args) -> list[tuple[Path, Path]]:
    """(input, output) pairs, checked before any work starts."""
    files = discover_inputs(args.inputs)
    out_dir = args.out.resolve()
    for item in args.inputs:
        if Path(item).is_dir() and Path(item).resolve() == out_dir:
            raise CliError(f"{item}: the output folder is an input folder; choose another -o")
    inputs = {f.resolve() for f in files}
    pairs, seen = [], {}
    for f in files:
        out = out_dir / f"{f.stem}.png"
        if out in inputs:
            raise CliError(f"{f}: its output {out} would overwrite an input")
        if out in seen:
            raise CliError(f"{f}: same output name as {seen[out]} ({out.name})")
        if out.exists() and not args.overwrite:
            raise CliError(f"{out}: exists (pass --overwrite to replace it)")
        seen[out] = f
        pairs.append((f, out))
    return pairs


def _find_gt(gt_dir: Path, stem: str) -> Path:
    for p in sorted(gt_dir.glob(f"{stem}.*")):
        return p
    raise CliError(f"{gt_dir}: no ground truth for '{stem}'")


def _save_kernel(out: Path, kernel: np.ndarray, scale: int) -> None:
    from scipy.io import savemat

    from .io import atomic_write

    base = out.with_name(f"{out.stem}_kernel_x{scale}")
    atomic_write(base.with_suffix(".mat"), lambda tmp: savemat(tmp, {"kernel": kernel}, format="5"))
    pic = np.round(kernel / kernel.max() * 255).astype(np.uint8)
    write_image(base.with_suffix(".png"), np.kron(pic, np.ones((8, 8), np.uint8)))


def cmd_upscale(args) -> int:
    from tqdm import tqdm

    from .api import resolve_kernel, upscale
    from .metrics import modcrop, psnr_y, ssim_y

    if args.back_projection < 0 or (args.back_projection and args.method not in ("mzsr", "finetune")):
        raise CliError(f"--back-projection needs N ≥ 0 and --method mzsr or finetune, got {args.back_projection} "
                       f"with {args.method}")
    if args.self_ensemble and args.method not in ("mzsr", "finetune"):
        raise CliError(f"--self-ensemble needs --method mzsr or finetune, got {args.method}")
    spec = parse_kernel_spec(args.kernel, convention=args.kernel_convention)
    downsample = args.downsample or ("bicubic" if spec.kind == "bicubic" else "direct")
    if args.estimator is not None:
        if spec.kind != "estimate":
            raise CliError(f"--estimator {args.estimator}: only used with --kernel estimate")
        get_estimator(args.estimator)  # an unknown name fails before any work
    pairs = _plan_outputs(args)
    if args.steps < 0:
        raise CliError(f"--steps must be ≥ 0, got {args.steps}")
    model, loaded, used = None, {}, collections.Counter()
    if args.method in ("mzsr", "finetune") or spec.kind == "estimate":
        model = load_model(args.model or default_model(args.scale, downsample), pick_device(args.device))
        loaded[model.name] = model
    failures, scores, t0 = 0, [], time.time()
    bar = tqdm(pairs, desc="upscale", unit="img", disable=None)
    for src, out in bar:
        try:
            img = read_image(src)
            kernel = resolve_kernel(img, spec if spec.kind == "estimate" else spec.for_image(src.stem, args.scale),
                                    args.scale, model, args.estimator)
            adapted = model
            if args.method == "mzsr" and not args.model:
                name = model_for_kernel(args.scale, downsample, kernel)  # the estimate, if any, used the default
                if name not in loaded:
                    loaded[name] = load_model(name, pick_device(args.device))
                adapted = loaded[name]
            steps_bar = lambda i, loss: bar.set_postfix(image=src.name, step=i + 1, loss=f"{loss:.4f}")  # noqa: E731
            sr = upscale(img, args.scale, kernel if kernel is not None else "bicubic", args.steps, args.method,
                         adapted, downsample, args.device, args.tile, steps_bar,
                         back_projection=args.back_projection, ensemble=args.self_ensemble)
            write_image(out, sr)
            if args.method == "mzsr":
                used[adapted.name] += 1
            if args.save_kernel and kernel is not None:
                _save_kernel(out, kernel, args.scale)
            if args.gt:
                gt, _, _, _ = _split(read_image(_find_gt(args.gt, src.stem)))
                gt8 = modcrop(np.round(gt * 255).astype(np.uint8), args.scale)
                sr8, _, _, _ = _split(sr)
                sr8 = np.round(sr8 * 255).astype(np.uint8)
                if sr8.shape != gt8.shape:
                    raise CliError(f"{src}: output {sr8.shape[:2]} and ground truth {gt8.shape[:2]} differ in size")
                scores.append((psnr_y(sr8, gt8, args.scale), ssim_y(sr8, gt8, args.scale)))
                bar.write(f"{src.name}: {scores[-1][0]:.2f} dB / {scores[-1][1]:.4f}")
        except EXPECTED as e:
            failures += 1
            bar.write(f"mzsr: error: {e}", file=sys.stderr)
    bar.close()
    done = len(pairs) - failures
    how = args.method if args.method == "bicubic" else f"{args.method}, {args.steps} steps"
    if used:
        how += ", model " + ", ".join(f"{name} ×{n}" if len(used) > 1 else name for name, n in sorted(used.items()))
    summary = f"{done}/{len(pairs)} images upscaled ×{args.scale} ({how}) into {args.out} in {time.time() - t0:.1f} s"
    if scores:
        summary += f"; mean PSNR {np.mean([s[0] for s in scores]):.4f} dB, SSIM {np.mean([s[1] for s in scores]):.4f}"
    print(summary)
    return 1 if failures else 0


def cmd_degrade(args) -> int:
    from .api import degrade_image

    spec = parse_kernel_spec(args.kernel, convention=args.kernel_convention)
    if spec.kind == "estimate":
        raise CliError("--kernel estimate: degrading needs a given kernel")
    downsample = args.downsample or ("bicubic" if spec.kind == "bicubic" else "direct")
    check_corruption(args.noise, args.jpeg, ("--noise", "--jpeg"))
    failures = 0
    for src, out in _plan_outputs(args):
        try:
            kernel = spec.for_image(src.stem, args.scale)
            img = read_image(src)
            if img.dtype != np.uint8:
                raise ImageError(f"{src}: degrade takes 8-bit images")
            write_image(out, degrade_image(img, kernel, args.scale, downsample, args.noise, args.seed, args.jpeg,
                                           src.stem))
        except EXPECTED as e:
            failures += 1
            print(f"mzsr: error: {e}", file=sys.stderr)
    return 1 if failures else 0


def cmd_models(args) -> int:
    for name in available():
        card = read_card(name)
        print(f"{name}: ×{card['scale']} {card['downsample']} downsampling, steps {_describe_steps(card)}, "
              f"step lrs {_describe_step_lrs(card['step_lrs'])}")
        if card.get("notes"):
            print(f"    {card['notes']}")
        if card.get("metrics"):
            print(f"    metrics: {json.dumps(card['metrics'])}")
    return 0


def _describe_steps(card: dict) -> str:
    """The card's training steps, summed over the runs of its stage that went on from one another's weights
    (``975 (849 + 126)``), so that a continued model does not look barely trained."""
    runs, stage = [], card.get("stage")
    while card and card.get("stage") == stage and "training" in card:
        runs.insert(0, card["training"]["steps"])
        card = card.get("base_card")
    return str(runs[0]) if len(runs) == 1 else f"{sum(runs)} ({' + '.join(map(str, runs))})"


def _describe_step_lrs(step_lrs: list) -> str:
    """The card's test-time rates in one line: learned per-layer ones as their mean per step."""
    if not any(isinstance(r, dict) for r in step_lrs):
        return str(step_lrs)
    means = [sum(r.values()) / len(r) if isinstance(r, dict) else r for r in step_lrs]
    return "learned per layer, mean per step [" + ", ".join(f"{m:.4g}" for m in means) + "]"


def cmd_benchmark(args) -> int:
    from .bench import run_benchmark
    from .bench.report import markdown, write_report
    from .bench.runner import merge_results, pool_folders, read_json

    if args.merge:
        results = pool_folders(args.out, args.merge)
    else:
        results = run_benchmark(args.out, args.sets, args.scenarios, args.methods, args.scale, args.model,
                                args.limit, args.repeats, args.seed, args.device, args.zssr_iters, args.curve_steps,
                                args.shard)
        results = merge_results(read_json(args.out / "results.json"), results)
    index = write_report(results, args.out)
    print(markdown(results))
    print(f"report: {index}")
    return 0


def _one_line_warnings(message, category, filename, lineno, file=None, line=None):
    print(f"mzsr: warning: {message}", file=sys.stderr)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    warnings.showwarning = _one_line_warnings
    try:
        if args.command == "upscale":
            return cmd_upscale(args)
        if args.command == "degrade":
            return cmd_degrade(args)
        if args.command == "models":
            return cmd_models(args)
        if args.command == "benchmark":
            return cmd_benchmark(args)
        if args.stage == "tune-step-lrs":
            from .train.meta import MetaConfig, tune_step_lrs

            cfg = build_config(MetaConfig, args)
            for name, lrs, scores in tune_step_lrs(args.weights, cfg):
                print(f"{name:>18} {lrs}: " + " ".join(f"{k} {v:.3f}" for k, v in scores.items()))
            return 0
        if args.stage == "export":
            from .models import ship

            extra = {"step_lrs": args.step_lrs} if args.step_lrs else {}
            model = load_model(args.weights)
            if args.results:
                from .bench.runner import fingerprint, model_scores, read_json
                found = [read_json(f) for f in args.results]
                bad = [str(f) for f, r in zip(args.results, found) if r is None]
                if bad:
                    raise ValueError(f"{', '.join(bad)}: not a readable benchmark results.json")
                digest = fingerprint(model)["sha256"]
                extra["benchmark"] = {k: v for r in found for k, v in model_scores(r, args.name, digest).items()}
            print(ship(model, args.name, args.base, args.notes, **extra))
            return 0
        base = None
        if args.resume:  # the run's own config; options given now override it (e.g. a new --time-budget)
            from .train.loop import saved_config
            base = saved_config(args.cfg_run_dir or args.config_cls.run_dir)
        cfg = build_config(args.config_cls, args, base)
        if args.stage == "pretrain":
            from .train.pretrain import run
        elif args.stage == "kernel":
            from .train.kernel import run
        else:
            from .train.meta import run
        run(cfg, resume=args.resume)
        return 0
    except EXPECTED as e:
        print(f"mzsr: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mzsr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
