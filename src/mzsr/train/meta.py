"""Stage 2 (spec §4): meta-transfer learning, MAML over random-kernel tasks, starting from θ_T → θ_M.

The maths is in ``maml``; here the stage: its config, one meta-iteration, validation and the card.
``learn_step_lrs`` learns one inner learning rate per parameter tensor and inner step with the weights
(MAML++'s LSLR); the model's card then carries them as its test-time rates.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import torch

from ..config import ConfigError, config, option
from ..models import load_model
from ..validate import MAX_NOISE
from ..net import SRNet
from ..schedules import multi_step_weights
from .common import (check_jpeg_option, check_kernel_min_var, checkpoint_option, clean_share_option, device_option,
                     make_card, make_sampler, run_dir_option, task_jpeg_option, task_noise_option, time_budget_option,
                     train_dirs_option)
from .data import sample_task
from .driver import Evaluation, train
from .maml import card_step_lrs, init_step_lrs, meta_backward
from .validate import VAL_KERNELS, selection_value, validate, validation_sets


@config
class MetaConfig:
    # options that measured no gain (ema, meta_lr_warmup) or were never measured (first_order_steps,
    # freeze_weights): an old run record or config file that sets them loads with a warning
    RETIRED = ("ema", "meta_lr_warmup", "first_order_steps", "freeze_weights")

    scale: int = option(2, "scale factor", at_least=2)
    downsample: Literal["direct", "bicubic"] = option("direct", "the tasks' subsampling after the blur")
    init: str = option("runs/pretrain-x2/best.safetensors",
                       "starting weights θ_T: a .safetensors path or a shipped model name")
    name: str = option("", "model name written into the card (empty: <downsample>-x<scale>)")
    train_dirs: list[str] = train_dirs_option()
    patch: int = option(64, "HR patch side of the tasks' images", at_least=1)
    meta_batch: int = option(5, "tasks per meta-iteration", at_least=1)
    n_train: int = option(8, "patches in a task's D_tr (the inner steps' data)", at_least=1)
    n_test: int = option(8, "patches in a task's D_te (the outer loss's data)", at_least=1)
    kernel_size: int = option(15, "side of the task kernels", at_least=1)
    # the paper's 1 leaves out sharp images (g^d_0.2, and the estimator's kernels down to ESTIMATE_MIN_VAR),
    # which the weights then meet only at test time
    kernel_min_var: float = option(1.0, "the task kernels' smallest variance", above=0)
    # a specialist for sharp kernels, such as those mzsr.models.model_for_kernel sends to the narrow-kernel model
    kernel_minor_max: float = option(0.0, "cap on the task kernels' smaller variance (0: none, the paper's)",
                                     at_least=0)
    # real photos (mzsr.train.data.task_corruption): tasks whose LR carries noise and JPEG, as a camera's does
    task_noise: float = task_noise_option()
    task_jpeg: int = task_jpeg_option()
    clean_share: float = clean_share_option()
    inner_steps: int = option(5, "inner SGD steps per task", at_least=1)
    inner_lr: float = option(0.01, "inner SGD learning rate (with learn_step_lrs: where the learned ones start)",
                             at_least=0)
    learn_step_lrs: bool = option(False, "learn a rate per parameter tensor and inner step (MAML++'s LSLR)")
    meta_lr: float = option(1e-4, "outer (Adam) learning rate", above=0)
    first_order: bool = option(False, "drop the meta-gradient's second-order terms (cheaper per step)")
    anneal_steps: int = option(3300, "meta-iterations of multi-step loss annealing (0: uniform weights)",
                               at_least=0)
    # an anchor against the drift of the starting point, which MZSR(1) follows
    start_weight: float = option(0.0, "weight of the un-adapted weights' D_te loss in the outer loss "
                                 "(0: the paper's)", at_least=0)
    steps: int = option(100_000, "meta-iterations to train for", at_least=0)
    test_step_lrs: list[float] = option([0.01], "test-time step learning rates written into the card "
                                        "(after the learned ones)", at_least=0)
    val_every: int = option(25, "meta-iterations between validations (0: none)", at_least=0)
    val_limit: int = option(5, "Set14 images validated on", at_least=1)
    val_crop: int = option(256, "side of the centred HR crop of each validation image", at_least=1)
    val_steps: list[int] = option([0, 1, 10], "adaptation steps n of the MZSR(n) scores validated", at_least=0)
    val_kernels: list[str] = option(["iso2.0", "ani4-1"], f"validation kernels: of {', '.join(VAL_KERNELS)}")
    # so that selection weighs real photos too
    val_noise: float = option(0.0, "also validate the first kernel with this noise σ (grey levels), the son "
                              "corrupted alike (0: none)", at_least=0, at_most=MAX_NOISE)
    val_jpeg: int = option(0, "… and this JPEG quality (0: none)", at_least=0)
    # the rule, adapting must help
    val_min_gain: float = option(0.0, "weights whose MZSR(most val_steps) gains less than this over MZSR(0) on "
                                 "some validation kernel rank below all others (-inf: off)")
    checkpoint_minutes: float = checkpoint_option()
    time_budget: str = time_budget_option()
    seed: int = option(0, "seed of the task draws", at_least=0)
    precision: Literal["fp32", "bf16", "fp16"] = option("fp32", "arithmetic of the forward passes")
    device: str = device_option()
    batch_tasks: Literal["auto", "true", "false"] = option(
        "auto", "run a meta-batch's tasks together through torch.func.vmap (auto: on CUDA only)")
    run_dir: str = run_dir_option("runs/meta-direct-x2")

    def check(self) -> None:
        """Combinations that cannot train."""
        check_kernel_min_var(self.kernel_min_var, self.scale)
        if self.kernel_minor_max and not self.kernel_minor_max > self.kernel_min_var:
            raise ConfigError("kernel_minor_max", f"must exceed kernel_min_var ({self.kernel_min_var:g}), "
                              f"got {self.kernel_minor_max:g}")
        for name, value in (("task_jpeg", self.task_jpeg), ("val_jpeg", self.val_jpeg)):
            check_jpeg_option(name, value)
        unknown = [name for name in self.val_kernels if name not in VAL_KERNELS]
        if unknown or not self.val_kernels:
            raise ConfigError("val_kernels", f"{', '.join(unknown) or 'none given'}: choose from "
                              f"{', '.join(VAL_KERNELS)}")


def batching_tasks(cfg: MetaConfig, device) -> bool:
    """Whether a run's meta-batches go through ``maml.batched_task_losses``."""
    return torch.device(device).type == "cuda" if cfg.batch_tasks == "auto" else cfg.batch_tasks == "true"


def val_sets(cfg: MetaConfig) -> dict:
    return validation_sets(cfg.val_kernels, cfg.scale, cfg.downsample, cfg.val_limit, cfg.val_crop, cfg.val_noise,
                           cfg.val_jpeg or None)


class MetaStage:
    """One meta-iteration: a meta-batch of tasks (every rank draws the same ones and computes its share), the
    multi-step loss's meta-gradient averaged over them, one Adam step on the weights (and learned rates)."""
    log_every = 1
    minimise = False

    def __init__(self, cfg: MetaConfig, files: list[Path], device, ddp, validating: bool):
        self.cfg, self.device, self.ddp = cfg, device, ddp
        self.sampler, self.rng = make_sampler(files, cfg.patch, cfg.seed)
        self.base = load_model(cfg.init, device)
        arch = self.base.card["arch"]
        self.net = SRNet(arch["channels"], arch["depth"], arch["bias"]).to(device)
        self.net.load_state_dict(self.base.params)
        self.rates = (init_step_lrs(self.net, cfg.inner_steps, cfg.inner_lr, self.base.card.get("step_lrs"))
                      if cfg.learn_step_lrs else None)
        self.learned = list(self.net.parameters()) + ([] if self.rates is None else [self.rates])
        self.opt = torch.optim.Adam(self.learned, lr=cfg.meta_lr)
        self.batched = batching_tasks(cfg, device)
        self.sets = val_sets(cfg) if validating else {}
        self.name = cfg.name or f"{cfg.downsample}-x{cfg.scale}"
        self.desc = f"meta {self.name}"

    def train_step(self, step: int) -> dict:
        cfg = self.cfg
        tasks = [sample_task(self.sampler, self.rng, cfg.scale, cfg.downsample, cfg.n_train, cfg.n_test,
                             cfg.kernel_size, cfg.kernel_min_var, cfg.kernel_minor_max or None, cfg.task_noise,
                             cfg.task_jpeg, cfg.clean_share)
                 for _ in range(cfg.meta_batch)]
        weights = multi_step_weights(step, cfg.inner_steps, cfg.anneal_steps)
        self.opt.zero_grad(set_to_none=True)
        mine = self.ddp.share(tasks)
        loss = meta_backward(self.net, mine, weights, cfg.inner_steps,
                             cfg.inner_lr if self.rates is None else self.rates, not cfg.first_order, self.device,
                             cfg.start_weight, cfg.precision, self.batched) / max(len(mine), 1)
        self.ddp.average_grads(self.learned, len(mine), cfg.meta_batch)
        for group in self.opt.param_groups:
            group["lr"] = cfg.meta_lr  # a resumed run's option wins over the rate its optimizer saved
        self.opt.step()
        if self.rates is not None:
            with torch.no_grad():
                self.rates.clamp_(min=0)  # a negative rate would climb the loss
        return {"loss": loss, "second_order": not cfg.first_order}

    def step_lrs(self) -> list:
        return card_step_lrs(self.net, self.rates, self.cfg.test_step_lrs)

    def evaluate(self) -> Evaluation:
        cfg = self.cfg
        params = {k: v.detach() for k, v in self.net.named_parameters()}
        scores = validate(self.net, self.sets, params, cfg.scale, cfg.downsample, cfg.val_steps, self.step_lrs())
        return Evaluation(selection_value(scores, cfg.val_min_gain), scores, {"val": scores}, {"set14_val": scores},
                          " ".join(f"{k} {v:.2f}" for k, v in scores.items()))

    def state(self) -> dict:
        return {} if self.rates is None else {"step_lrs": self.rates.detach().clone()}

    def load_state(self, saved: dict) -> None:
        if self.rates is not None:
            with torch.no_grad():
                self.rates.copy_(saved["step_lrs"])
        if saved.get("ema"):
            warnings.warn("the checkpoint's moving average of the weights (the retired ema option) is not used",
                          stacklevel=2)

    def card(self, training: dict, metrics: dict, curve: list[dict]) -> dict:
        # going on from meta-learned weights keeps their pretrained base: it is what --method finetune compares with
        return make_card(self.name, self.cfg.scale, self.cfg.downsample, self.step_lrs(), self.net, training,
                         metrics, curve, stage="meta", base=self.base.card.get("base", self.base.name),
                         base_card=self.base.card)


def run(cfg: MetaConfig, resume: bool = False, clock=None) -> Path:
    return train(cfg, MetaStage, resume, clock)
