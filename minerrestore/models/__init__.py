"""Models of minerrestore: one catalogue of names, and the files behind them.

- :mod:`.catalogue`: every model name (architectures A-G, shipped restorers, official GFP-GAN
  checkpoints, the StyleGAN2 prior, detectors, parser, metric and loss networks), aliases,
  :func:`resolve_file`, :func:`create_model`, :func:`load_model`;
- :mod:`.files`: where model files are looked for, safe loading and saving, SHA-256 checks;
- :mod:`.export`: training checkpoints -> restorer files (``minerrestore export``), run-folder names.

Importing this package does not import torch (``minerrestore --help`` stays fast).
"""

from __future__ import annotations

from minerrestore.models import catalogue
from minerrestore.models.catalogue import *  # noqa: F403  (the catalogue's public names, listed in its __all__)

__all__ = list(catalogue.__all__)
