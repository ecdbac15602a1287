"""minerrestore: blind restoration of miner face images with an improved GFP-GAN.

The toolkit implements "A Novel Blind Restoration Method for Miner Face Images Based on
Improved GFP-GAN Model" (IEEE Access): UNet++ degradation removal, a pretrained
StyleGAN2 prior and SE-CSSFT modulation, plus the workflow around it (augment,
degrade, train, restore, evaluate). Every CLI subcommand is also a Python function.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {"Restorer": "minerrestore.restore"}  # loaded on first access: `import minerrestore` stays light


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'minerrestore' has no attribute {name!r}")


__all__ = ["Restorer", "__version__"]
