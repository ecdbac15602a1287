"""Compatibility shim for ``basicsr`` 1.4.2 with current torchvision.

basicsr 1.4.2 (and through it gfpgan and facexlib) imports
``torchvision.transforms.functional_tensor``, a private module that torchvision
renamed to ``_functional_tensor`` in 0.17 (BasicSR issue #506, GFPGAN #506/#539/#602).
Importing this module first registers the old name as an alias, so
``import basicsr`` works again. It changes nothing when the old module still exists.

Import it before any ``basicsr``, ``gfpgan`` or ``facexlib`` import::

    import minerrestore.compat  # noqa: F401
    from basicsr.metrics import calculate_psnr
"""

from __future__ import annotations

import importlib
import sys

_OLD_NAME = "torchvision.transforms.functional_tensor"
_NEW_NAME = "torchvision.transforms._functional_tensor"


def install_torchvision_alias() -> None:
    """Register ``torchvision.transforms.functional_tensor`` if torchvision lacks it."""
    if _OLD_NAME in sys.modules:
        return
    try:
        importlib.import_module(_OLD_NAME)
    except ImportError:
        sys.modules[_OLD_NAME] = importlib.import_module(_NEW_NAME)


install_torchvision_alias()
