"""Replays the fuzzer's crashers (tests/fuzz_corpus/, saved by ``make fuzz``) and its seed inputs: each gives a
result or one of mzsr's own errors, never another exception or a dead process."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "fuzz"))
from fuzz_inputs import TARGETS, one_input, write_seeds  # noqa: E402

CORPUS = sorted((ROOT / "tests" / "fuzz_corpus").glob("*"))


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_crashers_are_refused_cleanly(path):
    one_input(path.read_bytes())


def test_seeds_cover_every_target_and_pass(tmp_path):
    write_seeds(tmp_path)
    seeds = sorted(tmp_path.iterdir())
    assert {p.read_bytes()[0] for p in seeds} == set(range(len(TARGETS)))
    for path in seeds:
        one_input(path.read_bytes())


def test_the_mat_reader_crash_is_a_kernel_error(tmp_path):
    """scipy 1.17's MAT reader segfaults on this file; load_kernel reads .mat files in a forked child."""
    from mzsr.kernels import KernelError, load_kernel

    (tmp_path / "k.mat").write_bytes((ROOT / "tests/fuzz_corpus/crash-mat-segfault-in-scipy-mio5").read_bytes()[1:])
    with pytest.raises(KernelError, match="k.mat: cannot read kernel"):
        load_kernel(tmp_path / "k.mat")
