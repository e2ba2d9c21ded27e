"""The number format scoring runs the forward pass in: float32 (the default, as trained and
evaluated) or bfloat16 (faster where the processor computes it natively).

bfloat16 keeps float32's exponent and 8 of its 24 mantissa bits, so a copy of the network in it
reads every review with the same weights, rounded. On a 2-core AMD EPYC with AVX512-BF16
(`python -m benchmarks scoring --precision bfloat16`) the default model's forward pass ran 1.6x
as fast and scoring end to end 1.4x, with 5 labels of 100,000 reviews different from float32's
and no probability more than 0.003 apart. Processors without bfloat16 arithmetic emulate it,
slower than float32 (the same CPU with oneDNN held to AVX512 without BF16, `ONEDNN_MAX_CPU_ISA`:
0.42x float32's forward pass; held to AVX2: 0.12x), so it is refused there.

Training and `evaluate` always run float32: a run's reported figures are float32's.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from sentiment.errors import SentimentError

if TYPE_CHECKING:
    import torch
    from torch import nn

PRECISIONS = ("float32", "bfloat16")
"""The choices; torch loads only when a function here runs, so the CLI's options can name them."""


def native_bfloat16(device: str | torch.device = "cpu") -> bool:
    """Whether `device` computes in bfloat16 natively: a CPU with AVX512-BF16 or AMX tiles, or a
    CUDA GPU that supports it (Ampere and later)."""
    import torch

    if str(device).startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    cpu = torch.cpu
    # Private helpers of the pinned torch release; an absent one reads as "not native".
    checks = (getattr(cpu, "_is_avx512_bf16_supported", None), getattr(cpu, "_is_amx_tile_supported", None))
    return any(check is not None and check() for check in checks)


def check_precision(precision: str, device: str | torch.device = "cpu") -> None:
    """Refuse an unknown precision, or bfloat16 on a device that would only emulate it."""
    if precision not in PRECISIONS:
        raise SentimentError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bfloat16" and not native_bfloat16(device):
        where = "this GPU" if str(device).startswith("cuda") else "this CPU (it lacks AVX512-BF16 and AMX)"
        raise SentimentError(
            f"--precision bfloat16: {where} has no native bfloat16 arithmetic, where it runs slower "
            "than float32; use --precision float32"
        )


def in_precision(network: nn.Module, precision: str) -> nn.Module:
    """`network` itself for float32; for bfloat16 a copy with every floating parameter and buffer
    in bfloat16 (the network is left as it is). Its logits come out in bfloat16:
    `sentiment.model.batching.predict_ids` turns them to float32 before the softmax."""
    if precision == "float32":
        return network
    if precision != "bfloat16":
        raise SentimentError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    import torch

    return copy.deepcopy(network).to(torch.bfloat16)
