"""Numeric precision of network forwards: float32, or bfloat16 autocast where the hardware has it.

On CPUs with native bfloat16 (AVX512-BF16 or AMX) oneDNN runs bfloat16 convolutions about
twice as fast as float32; elsewhere bfloat16 is emulated and slower, so ``auto`` picks it only
when it is native. ``float32`` always gives the reference result. The toolkit's benchmark
(``benchmarks/bench_forward.py``) reports the output difference between the two.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal, get_args

import torch

from minerrestore.errors import UsageError

PrecisionName = Literal["auto", "float32", "bfloat16"]
PRECISIONS: tuple[str, ...] = get_args(PrecisionName)


def bfloat16_native(device: torch.device) -> bool:
    """True when ``device`` runs bfloat16 matrix multiplies natively (CUDA Ampere+, CPU AVX512-BF16/AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The compute dtype for ``precision`` (``auto``, ``float32``, ``bfloat16``) on ``device``.

    Raises:
        UsageError: unknown name.
    """
    if precision not in PRECISIONS:
        raise UsageError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}", settings=("precision",))
    if precision == "auto":
        return torch.bfloat16 if bfloat16_native(device) else torch.float32
    return torch.bfloat16 if precision == "bfloat16" else torch.float32


def float32_region(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """Suspend an active autocast inside a forward (for small, precision-sensitive computations)."""
    if device.type in ("cpu", "cuda") and torch.is_autocast_enabled(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


@contextlib.contextmanager
def autocast(precision: str | torch.dtype, device: torch.device) -> Iterator[torch.dtype]:
    """Run the enclosed forward in ``precision`` (a name, or a dtype already resolved); yields the dtype.

    Inputs and outputs stay float32; inside, convolutions and matrix multiplies run in
    bfloat16 when it is chosen (``torch.autocast``). Combine with ``torch.inference_mode()``.
    Callers that run many batches resolve the name once (:func:`resolve_precision`) and pass
    the dtype.
    """
    dtype = precision if isinstance(precision, torch.dtype) else resolve_precision(precision, device)
    if dtype == torch.float32:
        yield dtype
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield dtype
