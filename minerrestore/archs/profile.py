"""Size and cost of the restorer schemes: parameter counts and forward FLOPs.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix
multiplies, two FLOPs per multiply-add; interpolation and element-wise operations are not
counted) on a model built on the ``meta`` device, so nothing is allocated or computed and a
512 px count takes well under a second.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from minerrestore.archs.restorer import RestorerConfig, RestorerNet


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (buffers such as the fixed noise are not counted)."""
    return sum(parameter.numel() for parameter in model.parameters())


def _meta_restorer(config: RestorerConfig) -> RestorerNet:
    with torch.device("meta"):
        return RestorerNet(config).eval().requires_grad_(False)


def _flops(model: RestorerNet, batch: int) -> int:
    size = model.config.out_size
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.zeros(batch, 3, size, size, device="meta"))
    return counter.get_total_flops()


def count_flops(config: RestorerConfig, batch: int = 1) -> int:
    """Forward FLOPs of a restorer with ``config`` for ``batch`` faces at ``config.out_size``."""
    return _flops(_meta_restorer(config), batch)


def scheme_table(sizes: Iterable[int] = (512, 128), names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """One row per architecture and restorer of the catalogue: parameters and GFLOPs per face.

    Architectures are measured at every size, parameters at the first one (they depend on the
    size only through the number of levels); a restorer is measured at its own size. Identical
    configurations (E = D, G = C) are measured once.

    Args:
        sizes: face sizes of the architectures' GFLOPs columns.
        names: catalogue names (default: every architecture, then every restorer).
    """
    from minerrestore.models.catalogue import entries, get_entry

    sizes = list(sizes)
    chosen = entries("architecture", "restorer") if names is None else [get_entry(name) for name in names]
    architectures = {entry.scheme: entry.name for entry in entries("architecture")}
    measured: dict[RestorerConfig, tuple[int, float]] = {}
    rows = []
    for entry in chosen:
        config = entry.config()
        row: dict[str, Any] = {
            "name": entry.name,
            "aliases": list(entry.aliases),
            "kind": entry.kind,
            "scheme": entry.scheme,
            "architecture": architectures[entry.scheme],
            "removal": config.removal,
            "modulation": config.modulation,
            "channel_multiplier": config.channel_multiplier,
            "out_size": config.out_size if entry.kind == "restorer" else None,
            "note": entry.purpose,
        }
        for size in sizes if entry.kind == "architecture" else [config.out_size]:
            sized = RestorerConfig.from_dict({**config.to_dict(), "out_size": size})
            if sized not in measured:
                model = _meta_restorer(sized)
                measured[sized] = (count_parameters(model), _flops(model, 1) / 1e9)
            row.setdefault("parameters", measured[sized][0])
            row[f"gflops_{size}"] = measured[sized][1]
        rows.append(row)
    return rows
