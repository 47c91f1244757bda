"""mzsr — Meta-Transfer Learning for Zero-Shot Super-Resolution (MZSR, CVPR 2020) in PyTorch.

Public API: :class:`Upscaler` (every decision of a request, models cached), :func:`upscale`,
:func:`resolve_kernel`, :func:`degrade_image`, :func:`load_model`.
"""
from .api import Upscaler, degrade_image, resolve_kernel, upscale
from .models import load_model

__all__ = ["Upscaler", "upscale", "resolve_kernel", "degrade_image", "load_model"]
