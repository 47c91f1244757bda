"""The ``mzsr`` command: argument parsing and printing around the Python API (:class:`mzsr.api.Upscaler` makes
every decision).

Bad input ends in one line ``mzsr: error: <file or option>: <problem>``, never a traceback (``MZSR_DEBUG=1``
shows one for an unexpected error). Exit status: 0 all done, 1 some images failed (the others are written), 2 a
usage error (nothing done), 3 an unexpected error, 128 + N when stopped by signal N. Outputs are written to a
temporary file and renamed, so a stopped run leaves no half-written output; inputs are never overwritten.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

from .api import DEFAULT_MAX_PIXELS, METHODS
from .schedules import AUTO_TIME_LIMIT
from .config import add_config_args, build_config
from .degrade import DOWNSAMPLING, check_corruption
from .estimate import DEFAULT_ESTIMATOR, ESTIMATORS
from .errors import ImageError, MzsrError, describe
from .io import (Terminated, discover_inputs, image_size, install_signal_handlers, read_image, sweep_temp_files,
                 write_image)
from .kernels import CONVENTIONS
from .models import NARROW_KERNEL_VAR, available, load_model, read_card


class CliError(Exception):
    """A problem with the command line itself (paths, names), reported as one line."""


# What a bad command line or file raises: reported in one line. Anything else is a fault of mzsr (exit 3).
EXPECTED = (CliError, MzsrError, ValueError, OSError)
EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 1, 2, 3


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
    batch = p.add_mutually_exclusive_group()
    batch.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    batch.add_argument("--skip-existing", action="store_true",
                       help="leave inputs whose output exists alone (to continue a stopped folder run)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help=f"refuse an image whose output would exceed N pixels, from its header, before decoding "
                        f"(default {DEFAULT_MAX_PIXELS:,})")


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
    up.add_argument("--steps", type=_steps, default="auto", metavar="auto|N",
                    help="auto (default): the model's meta-learned steps, then (at ×2, or on a son given noise or "
                         "JPEG) Adam until held-out parts of the image stop improving, within --time-limit, then "
                         "self-ensemble and 2 back-projections (none on a noisy or JPEG son); "
                         "N: the paper's MZSR(N), N whole-image SGD steps (0: the meta-learned weights as they are)")
    up.add_argument("--time-limit", type=float, metavar="SECONDS",
                    help=f"with --steps auto, seconds per image, inference included (default {AUTO_TIME_LIMIT:g}); "
                         "the model's meta-learned steps are taken whatever the limit, and at least half the limit "
                         "goes to adapting, so an image whose inference takes longer than that overruns it")
    up.add_argument("--noise", type=_auto_or(float), default="auto", metavar="auto|SIGMA",
                    help="noise σ (grey levels of 0..255) the son is given, so that adapting removes the input's "
                         "noise instead of learning it (ZSSR's sons too): auto (default) measures the input (at ×4 with "
                         "--steps auto, noise and --jpeg auto corrupt the son only from σ 8), 0 = none")
    up.add_argument("--jpeg", type=_auto_or(int, none=True), default="auto", metavar="auto|QUALITY|none",
                    help="JPEG quality the son is compressed at (mzsr, finetune): auto (default) reads a JPEG "
                         "input's quantisation tables, or finds it in the pixels of another file, none = no "
                         "compression")
    up.add_argument("--seed", type=int, default=0, help="seed of what adapting draws (crops, the son's noise)")
    up.add_argument("--back-projection", type=int, metavar="N",
                    help="end with N back-projection iterations, which make the output reproduce the input under "
                         "the kernel (default: 2 with --steps auto, 0 with --steps N, the paper's MZSR)")
    up.add_argument("--self-ensemble", action=argparse.BooleanOptionalAction, default=None,
                    help="median over the rotations/flips of the input that leave the kernel unchanged, as ZSSR "
                         "does (up to 8× the inference time; default: on with --steps auto, off with --steps N)")
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


def _steps(text: str):
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto or a whole number, got {text!r}") from None


def _auto_or(kind, none: bool = False):
    """An argparse type: ``auto``, (with ``none``) ``none``, or a ``kind`` value."""
    def parse(text: str):
        if text == "auto" or (none and text == "none"):
            return None if text == "none" else text
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected auto{', none' if none else ''} or a number, "
                                             f"got {text!r}") from None
    return parse


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
                    help="bicubic, zssr, zssrreal (noise on its sons), mzsrN, finetuneN (the paper's recipe: N "
                         "whole-image steps on a clean son; finetune ≥ 100 steps uses Adam 1e-4), mzsrNbpB (then B "
                         "back-projection iterations), mzsrNx8 / mzsrNbpBx8 (self-ensemble), mzsrauto (the default "
                         "of mzsr upscale); a blind suffix on the mzsr ones estimates the kernel "
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
    ex = stages.add_parser("export", help="ship a trained model inside the package (weights + card)")
    ex.add_argument("weights", type=Path, help="a run's best.safetensors (its .json card beside it)")
    ex.add_argument("--name", required=True, help="shipped model name, e.g. direct-x2")
    ex.add_argument("--base", help="shipped bicubic-pretrained model it started from (for --method finetune)")
    ex.add_argument("--notes", help="a sentence for the card: what this model is and is not")
    ex.add_argument("--step-lrs", type=float, nargs="+", help="replace the card's test-time step learning rates")
    ex.add_argument("--results", type=Path, nargs="+", metavar="RESULTS_JSON",
                    help="benchmark results.json files whose cells for this model go into the card, next to the "
                         "paper (re-export a shipped model onto itself to add them)")


def _prepare_out_dir(out_dir: Path) -> None:
    """Make the output folder and prove it writable before any image is processed; sweep the temporary files
    that runs killed outright (SIGKILL, power loss) left there."""
    if out_dir.exists() and not out_dir.is_dir():
        raise CliError(f"-o {out_dir}: exists and is not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out_dir, prefix=".mzsr-probe-")
        probe.close()
    except OSError as e:
        raise CliError(f"-o {out_dir}: cannot write there ({e.strerror or describe(e)})") from None
    sweep_temp_files(out_dir)


def _plan_outputs(args) -> list[tuple[Path, Path]]:
    """(input, output) pairs, checked before any work starts; with --skip-existing, those not done yet."""
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
        seen[out] = f
        if out.exists() and args.skip_existing:
            continue
        if out.exists() and not args.overwrite:
            raise CliError(f"{out}: exists (pass --overwrite to replace it, or --skip-existing to leave it)")
        pairs.append((f, out))
    _prepare_out_dir(out_dir)
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

    from .api import Upscaler

    up = Upscaler(args.scale, args.kernel, args.steps, args.method, args.model, args.downsample, args.device,
                  args.tile, args.estimator, args.back_projection, args.self_ensemble, args.kernel_convention,
                  args.max_pixels, args.noise, args.jpeg, args.time_limit, args.seed)
    if args.gt is not None and not args.gt.is_dir():
        raise CliError(f"--gt {args.gt}: no such folder")
    pairs = _plan_outputs(args)
    failures, scores, used, t0 = 0, [], collections.Counter(), time.time()
    bar = tqdm(pairs, desc="upscale", unit="img", disable=None)
    for src, out in bar:
        try:
            steps_bar = lambda i, loss: bar.set_postfix(image=src.name, step=i + 1, loss=f"{loss:.4f}")  # noqa: E731
            up.check_size(*image_size(src), str(src))
            result = up.upscale(read_image(src, max_pixels=up.input_limit()), src.stem, steps_bar, src)
            write_image(out, result.image)
            used[result.model] += result.model is not None
            if result.noise or result.jpeg is not None or result.guard < 1:
                bar.write(f"{src.name}: {_realphoto_note(result)}")
            if args.save_kernel and result.kernel is not None:
                _save_kernel(out, result.kernel, args.scale)
        except Exception as e:  # noqa: BLE001 - one image's failure, whatever it is, must not end the batch
            failures += 1
            bar.write(f"mzsr: error: {_per_image(e, src)}", file=sys.stderr)
            continue
        if args.gt:
            try:
                scores.append(up.score(result.image, read_image(_find_gt(args.gt, src.stem))))
                bar.write(f"{src.name}: {scores[-1][0]:.2f} dB / {scores[-1][1]:.4f}")
            except EXPECTED as e:  # the output is written and good: only its score is missing
                bar.write(f"mzsr: warning: {_named(e, src)}: not scored", file=sys.stderr)
    bar.close()
    done = len(pairs) - failures
    how = up.describe()
    models = +used
    if models:
        how += ", model " + ", ".join(f"{n} ×{c}" if len(models) > 1 else n for n, c in sorted(models.items()))
    summary = f"{done}/{len(pairs)} images upscaled ×{args.scale} ({how}) into {args.out} in {time.time() - t0:.1f} s"
    if scores:
        summary += f"; mean PSNR {np.mean([s[0] for s in scores]):.4f} dB, SSIM {np.mean([s[1] for s in scores]):.4f}"
    print(summary)
    return EXIT_FAILED if failures else 0


def _realphoto_note(result) -> str:
    """What the real-photo handling did to one image, in words."""
    parts = [f"son given noise σ {result.noise:.1f}" if result.noise else "",
             f"JPEG quality {result.jpeg}" if result.jpeg is not None else "",
             f"{result.steps} steps" if result.steps is not None else "",
             f"median of {result.frames} frames" if result.frames > 1 else "",
             f"{1 - result.guard:.0%} bicubic (the net did no better on held-out parts)" if result.guard < 1 else ""]
    return ", ".join(p for p in parts if p)


def _named(error: Exception, src: Path) -> str:
    """An error's message, led by the file it happened on unless it names it already."""
    text = str(error)
    return text if str(src) in text or src.name in text else f"{src}: {text}"


def _per_image(error: Exception, src: Path) -> str:
    """One line for an image that failed; an unexpected error says so (its traceback with MZSR_DEBUG=1)."""
    if os.environ.get("MZSR_DEBUG"):
        traceback.print_exception(error)
    if isinstance(error, MemoryError):
        return f"{src}: not enough memory (try --tile, or a smaller --max-pixels)"
    if isinstance(error, EXPECTED):
        return _named(error, src)
    return f"{src}: unexpected {describe(error)} (a bug in mzsr; MZSR_DEBUG=1 shows where)"


def cmd_degrade(args) -> int:
    from .api import _as_spec, default_downsample, degrade_image

    spec = _as_spec(args.kernel, args.kernel_convention)
    if spec.kind == "estimate":
        raise CliError("--kernel estimate: degrading needs a given kernel")
    downsample = args.downsample or default_downsample(spec, None)
    check_corruption(args.noise, args.jpeg, ("--noise", "--jpeg"))
    failures = 0
    for src, out in _plan_outputs(args):
        try:
            kernel = spec.for_image(src.stem, args.scale)
            img = read_image(src, max_pixels=args.max_pixels)
            if img.dtype != np.uint8:
                raise ImageError(f"{src}: degrade takes 8-bit images")
            write_image(out, degrade_image(img, kernel, args.scale, downsample, args.noise, args.seed, args.jpeg,
                                           src.stem))
        except Exception as e:  # noqa: BLE001 - as in cmd_upscale
            failures += 1
            print(f"mzsr: error: {_per_image(e, src)}", file=sys.stderr)
    return EXIT_FAILED if failures else 0


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
    previous = install_signal_handlers()  # SIGTERM/SIGHUP unwind like Ctrl-C, so temporary files are removed
    try:
        if args.command == "upscale":
            return cmd_upscale(args)
        if args.command == "degrade":
            return cmd_degrade(args)
        if args.command == "models":
            return cmd_models(args)
        if args.command == "benchmark":
            return cmd_benchmark(args)
        if args.stage == "export":
            from .models import ship

            extra = {"step_lrs": args.step_lrs} if args.step_lrs else {}
            model = load_model(args.weights)
            if args.results:
                from .bench.runner import model_scores, read_json
                from .models import fingerprint
                found = [read_json(f) for f in args.results]
                bad = [str(f) for f, r in zip(args.results, found) if r is None]
                if bad:
                    raise ValueError(f"{', '.join(bad)}: not a readable benchmark results.json")
                digest = fingerprint(model)["sha256"]
                extra["benchmark"] = {k: v for r in found for k, v in model_scores(r, args.name, digest).items()}
            print(ship(model, args.name, args.base, args.notes, **extra))
            return 0
        base, source = None, "saved config"
        if args.resume:  # the run's own config; options given now override it (e.g. a new --time-budget)
            from .train.loop import saved_config
            run_dir = Path(args.cfg_run_dir or args.config_cls.run_dir)
            base, source = saved_config(run_dir), f"{run_dir}: saved config"
        cfg = build_config(args.config_cls, args, base, source)
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
        return EXIT_USAGE
    except Terminated as e:
        print(f"mzsr: stopped ({e})", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("mzsr: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - a bug: one line, the traceback only on request
        if os.environ.get("MZSR_DEBUG"):
            raise
        print(f"mzsr: error: unexpected {describe(e)} (a bug in mzsr; MZSR_DEBUG=1 shows where)", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
