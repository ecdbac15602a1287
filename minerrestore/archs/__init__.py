"""Networks of minerrestore: the GFP-GAN family with UNet++ and SE-CSSFT (METHOD.md section 2).

One file per network: :mod:`.stylegan2` (prior), :mod:`.unet` and :mod:`.unetpp` (degradation
removal), :mod:`.sft` (modulation layers), :mod:`.restorer` (the configurable restorer and the
paper's schemes A-G), :mod:`.discriminators` (training), :mod:`.checkpoints` (official and own
files), :mod:`.precision` (float32 / bfloat16), :mod:`.profile` (parameters and FLOPs).
Identity networks live in :mod:`.identity` and are imported from there.
"""

from __future__ import annotations

from minerrestore.archs.checkpoints import (
    InitReport,
    convert_stylegan2_original,
    init_from_checkpoint,
    inspect_checkpoint,
    load_prior,
    load_restorer,
    save_restorer,
)
from minerrestore.archs.discriminators import FacialComponentDiscriminator, StyleGAN2Discriminator
from minerrestore.archs.precision import autocast, bfloat16_native, resolve_precision
from minerrestore.archs.profile import count_flops, count_parameters, scheme_table
from minerrestore.archs.restorer import (
    SCHEMES,
    RestorerConfig,
    RestorerNet,
    RestorerOutput,
    checkpoint_filter_fn,
    create_restorer,
    to_official_state_dict,
)
from minerrestore.archs.stylegan2 import StyleGAN2Generator

__all__ = [
    "SCHEMES",
    "FacialComponentDiscriminator",
    "InitReport",
    "RestorerConfig",
    "RestorerNet",
    "RestorerOutput",
    "StyleGAN2Discriminator",
    "StyleGAN2Generator",
    "autocast",
    "bfloat16_native",
    "checkpoint_filter_fn",
    "convert_stylegan2_original",
    "count_flops",
    "count_parameters",
    "create_restorer",
    "init_from_checkpoint",
    "inspect_checkpoint",
    "load_prior",
    "load_restorer",
    "resolve_precision",
    "save_restorer",
    "scheme_table",
    "to_official_state_dict",
]
