"""minerrestore: blind restoration of miner face images with an improved GFP-GAN.

The toolkit implements "A Novel Blind Restoration Method for Miner Face Images Based on
Improved GFP-GAN Model" (IEEE Access): UNet++ degradation removal, a pretrained
StyleGAN2 prior and SE-CSSFT modulation, plus the workflow around it (augment,
degrade, train, restore, evaluate). Every CLI subcommand is also a Python function.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
