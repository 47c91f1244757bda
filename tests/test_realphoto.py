"""Real photos: noisy, JPEG-compressed meta-training tasks and validation."""
import numpy as np
import pytest
import torch

from mzsr.train.data import PatchSampler, sample_task, task_corruption


def _sampler(seed=0):
    rng = np.random.default_rng(seed)
    img = (rng.random((96, 96, 3)) * 255).astype(np.uint8)
    return PatchSampler([img], 32, rng), rng


def test_task_corruption_draws_within_the_ranges_and_keeps_the_clean_share():
    rng = np.random.default_rng(0)
    draws = [task_corruption(rng, 10.0, 70, 0.3) for _ in range(3000)]
    clean = [d for d in draws if d == (0.0, None)]
    assert len(clean) / len(draws) == pytest.approx(0.3, abs=0.03)
    sigmas = [s for s, _ in draws if s]
    qualities = [q for _, q in draws if q is not None]
    assert 0 < min(sigmas) and max(sigmas) <= 10 and 70 <= min(qualities) and max(qualities) == 95
    assert any(s and q is None for s, q in draws) and any(not s and q for s, q in draws)  # noise-only, JPEG-only
    assert task_corruption(rng) == (0.0, None)


def test_clean_tasks_are_unchanged_by_the_corruption_options():
    sampler, rng = _sampler()
    clean = sample_task(sampler, rng, 2, "direct", 2, 2)
    sampler, rng = _sampler()
    same = sample_task(sampler, rng, 2, "direct", 2, 2, noise=0.0, jpeg=0, clean_share=0.5)
    for (x, y), (x2, y2) in zip(clean, same):
        assert torch.equal(x, x2) and torch.equal(y, y2)


def test_noisy_task_corrupts_inner_pairs_and_test_input_but_not_test_labels():
    sampler, rng = _sampler(1)
    (x_tr, y_tr), (x_te, y_te) = sample_task(sampler, rng, 2, "direct", 2, 2, noise=8.0, clean_share=0.0)
    sampler, rng = _sampler(1)
    (cx_tr, cy_tr), (cx_te, cy_te) = sample_task(sampler, rng, 2, "direct", 2, 2)
    assert torch.equal(y_te, cy_te)  # what the adapted weights are scored on: the clean HR
    assert not torch.equal(y_tr, cy_tr)  # the inner steps fit a noisy target, as a noisy LR is at test time
    grey = lambda t: float(t.mul(255).std())  # noqa: E731
    assert grey(y_tr - cy_tr) > 1.0
    assert grey(x_te - cx_te) > 1.0
    assert x_tr.shape == cx_tr.shape and (y_tr * 255 - (y_tr * 255).round()).abs().max() < 1e-4  # rounded to uint8


def test_noisy_validation_entry_is_scored_beside_the_clean_kernels(data, tiny_model):
    from mzsr.models import load_model
    from mzsr.train.meta import MetaConfig, val_sets
    from mzsr.train.validate import validate

    cfg = MetaConfig(val_limit=1, val_crop=32, val_steps=[0, 1], val_noise=8.0, val_jpeg=60, device="cpu")
    sets = val_sets(cfg)
    assert list(sets) == ["iso2.0", "ani4-1", "iso2.0+n8q60"]
    model = load_model(tiny_model, "cpu")

    def validate_(*_):
        return validate(model.net, sets, model.params, cfg.scale, cfg.downsample, cfg.val_steps, model.step_lrs)

    scores = validate_()
    assert scores["iso2.0+n8q60_mzsr0"] < scores["iso2.0_mzsr0"]  # the same crop, noisier
    adapted = [v for k, v in scores.items() if k.endswith("_mzsr1")]
    assert scores["score"] == pytest.approx(np.mean(adapted), abs=1e-3)
    assert validate_() == scores  # seeded: selection compares like with like


@pytest.mark.parametrize("bad", [{"task_noise": -1.0}, {"task_noise": float("nan")}, {"task_jpeg": 96},
                                 {"clean_share": 1.5}, {"val_jpeg": -3}])
def test_bad_corruption_options_are_refused_by_name(bad):
    from mzsr.config import check_fields
    from mzsr.train.meta import MetaConfig

    with pytest.raises(ValueError, match=next(iter(bad))):
        check_fields(MetaConfig(**bad))
