"""``mzsr benchmark``: the paper's tables re-measured (spec §6–7), methods × scenarios × test sets.

scenarios (kernels, degraded inputs) → methods (one SR method each) → runner (cached per image, resumable;
curve: PSNR versus steps) → report (results.json, table.md, figures, index.html; imports matplotlib, so it is
not imported here).
"""
from .runner import DEFAULT_METHODS, run_benchmark

__all__ = ["run_benchmark", "DEFAULT_METHODS"]
