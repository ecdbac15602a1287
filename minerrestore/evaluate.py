"""``minerrestore evaluate``: the paper's metrics over folders, stating exactly which variant each is.

Restored images are paired with ground truth by file stem (``a.png`` with ``a.jpg``);
missing partners, duplicated stems and size mismatches stop the run with a message
naming the files. Per image: PSNR, SSIM, LPIPS, NIQE, identity (ArcFace, the papers' view,
when its file is present; else MobileFaceNet; or dlib); per set: FID against a
reference folder (the ground truth by default) or cached statistics. Several methods
(``compare``) are scored against the same ground truth and reference, giving one row per
method as in the paper's Table 3 (METHOD.md §5), plus a bar chart.

Batches go through the networks on the GPU when there is one; images are decoded in
background threads; a progress bar runs on stderr. Outputs (JSON, CSV, PNG) are
written atomically.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from minerrestore.batch import progress_bar
from minerrestore.device import resolve_device
from minerrestore.errors import UsageError
from minerrestore.evaluate_report import COLUMNS, EvaluationReport, MethodResult, Summary
from minerrestore.io import image_size, list_images, read_image
from minerrestore.metrics import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_IDENTITY_NETWORK,
    DEFAULT_LPIPS_NET,
    FULL_REFERENCE,
    METRICS,
    fid,
    identity,
    lpips,
    psnr_ssim,
)
from minerrestore.metrics._images import as_nchw
from minerrestore.metrics.fid import FEATURE_MODEL, FeatureStatistics, frechet_distance, small_set_warning
from minerrestore.metrics.niqe import NIQE_BLOCK, NIQE_MIN_BLOCKS, niqe_score


@dataclass(frozen=True)
class Pair:
    """A restored image and its ground truth (None without --gt), named by their common stem."""

    name: str
    restored: Path
    gt: Path | None


# ---------------------------------------------------------------------------------------------
# inputs


def choose_metrics(requested: Sequence[str] | None, has_gt: bool, has_reference: bool) -> tuple[str, ...]:
    """Validate ``--metrics``; by default every metric the inputs allow.

    Raises:
        UsageError: unknown name, or a metric whose input is missing.
    """
    if not requested:
        return tuple(m for m in METRICS if (has_gt or m not in FULL_REFERENCE) and (m != "fid" or has_reference))
    names = tuple(dict.fromkeys(name.strip().lower() for name in requested if name.strip()))
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise UsageError(f"unknown metric(s) {', '.join(unknown)}", hint=f"choose from {','.join(METRICS)}")
    needing_gt = [name for name in names if name in FULL_REFERENCE]
    if needing_gt and not has_gt:
        raise UsageError(
            f"{', '.join(needing_gt)} compare with the ground truth", hint="add gt GT_DIR", settings=("gt",)
        )
    if "fid" in names and not has_reference:
        raise UsageError(
            "FID needs a reference set",
            hint="add gt GT_DIR, ref REF_DIR or ref_stats FILE.npz",
            settings=("gt", "ref", "ref_stats"),
        )
    return names


def _by_stem(folder: Path, role: str, recursive: bool = False) -> dict[str, Path]:
    """Images of ``folder`` by relative path without extension (``sub/a`` with ``recursive``)."""
    files = list_images(folder, recursive)
    if not files:
        raise UsageError(
            f"{folder}: no images ({role})",
            hint="give a folder of .png/.jpg/... files, or recursive for sub-folders",
            settings=("recursive",),
        )
    found: dict[str, Path] = {}
    for path in files:
        stem = path.relative_to(folder).with_suffix("").as_posix() if folder.is_dir() else path.stem
        if stem in found:
            raise UsageError(
                f"{folder}: two {role} images share the name {stem!r} ({found[stem].name}, {path.name})",
                hint="images are paired by file name without extension; keep one",
            )
        found[stem] = path
    return found


def _shown(names: Sequence[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def pair_images(
    restored_dir: str | Path,
    gt_dir: str | Path | None,
    *,
    pairs_only: bool = False,
    recursive: bool = False,
    unmatched: list[str] | None = None,
) -> list[Pair]:
    """Pair restored images with ground truth by file stem (relative path with ``recursive``), sorted.

    Args:
        restored_dir: folder of restored images.
        gt_dir: folder of ground truth; None gives unpaired images (no-reference metrics).
        pairs_only: keep the matching pairs instead of refusing images without a partner.
        recursive: descend into sub-folders (stems are relative paths).
        unmatched: with ``pairs_only``, receives the names left out (``a (no ground truth)``).

    Raises:
        UsageError: an empty folder, a stem used twice, a restored image without ground
            truth or the reverse (unless ``pairs_only``), or two partners of different size.
    """
    restored = _by_stem(Path(restored_dir), "restored", recursive)
    if gt_dir is None:
        return [Pair(name, path, None) for name, path in restored.items()]
    truth = _by_stem(Path(gt_dir), "ground-truth", recursive)
    no_truth = sorted(set(restored) - set(truth))
    no_restored = sorted(set(truth) - set(restored))
    if pairs_only:
        if unmatched is not None:
            unmatched += [f"{name} (no ground truth)" for name in no_truth]
            unmatched += [f"{name} (not restored)" for name in no_restored]
        if len(no_truth) == len(restored):
            raise UsageError(f"no image in {restored_dir} has a ground truth in {gt_dir}")
    elif no_truth:
        raise UsageError(
            f"{len(no_truth)} image(s) in {restored_dir} have no ground truth in {gt_dir}: {_shown(no_truth)}",
            hint="images are paired by file name without extension (a.png <-> a.jpg); pairs_only scores the rest",
            settings=("pairs_only",),
        )
    elif no_restored:
        raise UsageError(
            f"{len(no_restored)} ground-truth image(s) in {gt_dir} have no restored image in {restored_dir}: "
            f"{_shown(no_restored)}",
            hint="restore every ground-truth image, or add pairs_only to score the matching pairs",
            settings=("pairs_only",),
        )
    pairs = [Pair(name, restored[name], truth[name]) for name in restored if name in truth]
    for pair in pairs:  # cheap header check (rotation-agnostic); exact sizes are checked on reading
        sizes = image_size(pair.restored), image_size(pair.gt)  # (height, width); None: read_image says why
        if sizes[0] is not None and sizes[1] is not None and sorted(sizes[0]) != sorted(sizes[1]):
            raise _size_error(pair, sizes[0][::-1], sizes[1][::-1])
    return pairs


def _size_error(pair: Pair, restored: tuple[int, int], truth: tuple[int, int]) -> UsageError:
    return UsageError(
        f"{pair.restored} is {restored[0]}x{restored[1]} but its ground truth {pair.gt} is {truth[0]}x{truth[1]}",
        hint="restored images must have the ground truth's size (restore aligned faces at the GT size)",
    )


# ---------------------------------------------------------------------------------------------
# networks and variant descriptions


@dataclass(frozen=True)
class ScoringOptions:
    """How per-image metrics are computed (see :func:`evaluate`)."""

    crop_border: int = 0
    y_channel: bool = False
    aligned_faces: bool = True
    batch_size: int = DEFAULT_BATCH_SIZE


@dataclass
class _Networks:
    """The networks the chosen metrics need (None when not needed)."""

    lpips: lpips.LPIPS | None = None
    inception: torch.jit.ScriptModule | None = None
    face: identity.IdentityModel | None = None


def _load_networks(
    metrics: Sequence[str], lpips_net: lpips.LpipsNet, identity_network: str, device: torch.device
) -> _Networks:
    networks = _Networks()
    if "lpips" in metrics:
        networks.lpips = lpips.load_lpips(lpips_net, device)
    if "fid" in metrics:
        networks.inception = fid.load_inception(device)
    if "identity" in metrics:
        networks.face = identity.load_identity_network(identity_network, device)
    return networks


def describe_identity(network: str, aligned_faces: bool) -> str:
    """What the identity metric computes with ``network`` (``arcface``, ``mobilefacenet`` or ``dlib``)."""
    if network == "arcface":
        return (
            "ArcFace ResNet-18 (GFP-GAN's identity network), cosine and angle in degrees, the 'Deg.' view "
            "of papers (IDS of VQFR/CodeFormer): whole face, grey, bilinear 128x128, as their scripts"
            + ("" if aligned_faces else " (images not FFHQ-aligned: less reliable)")
        )
    if network == "dlib":
        return (
            "dlib ResNet face descriptor (independent of training losses), Euclidean distance, lower is better, "
            f"same person below {identity.DLIB_SAME_PERSON}; both faces at 256 px, described at the ground "
            "truth's 5 dlib landmarks; not comparable with papers' ArcFace values"
        )
    return (
        "MobileFaceNet (foamliu) embeddings, cosine similarity and angle in degrees, "
        + (
            "faces mapped from the FFHQ template to the ArcFace 112 crop"
            if aligned_faces
            else "whole images resized to 112x112 (unaligned: less reliable)"
        )
        + "; not comparable with papers' ArcFace values (ArcFace ResNet-18 'Deg.')"
    )


def describe_variants(
    metrics: Sequence[str],
    crop_border: int,
    y_channel: bool,
    lpips_net: str,
    aligned_faces: bool,
    reference: str,
    identity_network: str = "mobilefacenet",
) -> dict[str, str]:
    """What exactly each requested metric computes (printed under the table and stored in JSON).

    ``identity_network`` is a resolved name (see :func:`~minerrestore.metrics.identity.resolve_identity_network`).
    """
    channel = "Y (MATLAB BT.601)" if y_channel else "RGB"
    texts = {
        "psnr": f"{channel}, MAX 255, crop {crop_border} px; as basicsr calculate_psnr",
        "ssim": f"{channel}{'' if y_channel else ' (mean of channels)'}, Gaussian 11x11 sigma 1.5, "
        f"K1 0.01, K2 0.03, crop {crop_border} px; as basicsr calculate_ssim",
        "lpips": f"LPIPS v0.1, {'AlexNet' if lpips_net == 'alex' else 'VGG16'} backbone, full resolution; "
        f"as lpips.LPIPS(net='{lpips_net}')",
        "fid": f"{FEATURE_MODEL}, TF-bilinear resize to 299; reference: {reference}",
        "niqe": f"Y channel, MATLAB pristine model (from basicsr), 96x96 blocks, crop {crop_border} px; "
        "as basicsr calculate_niqe",
        "identity": describe_identity(identity_network, aligned_faces),
    }
    return {name: texts[name] for name in metrics}


# ---------------------------------------------------------------------------------------------
# computation


def _read_pair(pair: Pair, crop_border: int) -> tuple[np.ndarray, np.ndarray | None]:
    restored = read_image(pair.restored).rgb
    truth = read_image(pair.gt).rgb if pair.gt is not None else None
    if truth is not None and truth.shape != restored.shape:
        raise _size_error(pair, restored.shape[1::-1], truth.shape[1::-1])
    if 2 * crop_border >= min(restored.shape[:2]):
        raise UsageError(
            f"crop_border {crop_border} leaves nothing of {pair.restored} ({restored.shape[1]}x{restored.shape[0]})",
            settings=("crop_border",),
        )
    return restored, truth


def _batches(pairs: list[Pair], size: int) -> list[list[Pair]]:
    return [pairs[start : start + size] for start in range(0, len(pairs), size)]


def _prefetched(pool: ThreadPoolExecutor, pairs: list[Pair], batch_size: int, crop_border: int):
    """Yield (pairs, decoded images) per batch, decoding the next batch while this one is scored."""
    batches = _batches(pairs, batch_size)

    def submit(batch: list[Pair]) -> list[Future]:
        return [pool.submit(_read_pair, pair, crop_border) for pair in batch]

    pending = submit(batches[0]) if batches else []
    for index, batch in enumerate(batches):
        current = pending
        pending = submit(batches[index + 1]) if index + 1 < len(batches) else []
        yield batch, [future.result() for future in current]


def _same_size_groups(images: list[tuple[np.ndarray, np.ndarray | None]]) -> list[list[int]]:
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, (restored, _) in enumerate(images):
        groups.setdefault(restored.shape, []).append(index)
    return list(groups.values())


def _score_group(
    restored: np.ndarray,
    truth: np.ndarray | None,
    metrics: Sequence[str],
    networks: _Networks,
    device: torch.device,
    options: ScoringOptions,
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Per-image values of one same-size group, and its Inception features (or None)."""
    values: dict[str, np.ndarray] = {}
    first = as_nchw(restored, device)
    second = as_nchw(truth, device) if truth is not None else None
    crop_border, y_channel = options.crop_border, options.y_channel
    if "psnr" in metrics:
        values["psnr"] = psnr_ssim.psnr(first, second, crop_border, y_channel).cpu().numpy()
    if "ssim" in metrics:
        values["ssim"] = psnr_ssim.ssim(first, second, crop_border, y_channel).cpu().numpy()
    if "lpips" in metrics:
        values["lpips"] = lpips.lpips_distance(first, second, networks.lpips).numpy()
    if "niqe" in metrics:
        values["niqe"] = np.array([_niqe_or_nan(image, crop_border) for image in first])
    if "identity" in metrics and isinstance(networks.face, identity.DlibIdentity):
        values["identity_dist"] = networks.face.distances(restored, truth)
    elif "identity" in metrics:
        cosine, degrees = identity.identity_similarity(restored, truth, networks.face, options.aligned_faces)
        values["identity_cos"], values["identity_deg"] = cosine, degrees
    features = fid.inception_features(first, networks.inception) if "fid" in metrics else None
    return values, features


def _niqe_or_nan(image: torch.Tensor, crop_border: int) -> float:
    height, width = (side - 2 * crop_border for side in image.shape[-2:])
    if (height // NIQE_BLOCK) * (width // NIQE_BLOCK) < NIQE_MIN_BLOCKS:
        return math.nan
    return float(niqe_score(image, crop_border)[0])


def _reference_statistics(
    ref_dir: Path, networks: _Networks, batch_size: int, pool: ThreadPoolExecutor, quiet: bool
) -> Any:
    pairs = [Pair(path.stem, path, None) for path in list_images(ref_dir)]
    if not pairs:
        raise UsageError(f"{ref_dir}: no images for the FID reference")
    features = []
    with progress_bar(quiet) as progress:
        task = progress.add_task("FID reference", total=len(pairs), rate="")
        for batch, images in _prefetched(pool, pairs, batch_size, 0):
            for group in _same_size_groups(images):
                features.append(fid.inception_features(np.stack([images[i][0] for i in group]), networks.inception))
            progress.update(task, advance=len(batch))
    return FeatureStatistics.from_features(np.concatenate(features), source=str(ref_dir))


def _score_method(
    name: str,
    pairs: list[Pair],
    metrics: Sequence[str],
    networks: _Networks,
    device: torch.device,
    options: ScoringOptions,
    pool: ThreadPoolExecutor,
    quiet: bool,
) -> tuple[MethodResult, np.ndarray | None]:
    rows: list[dict[str, Any]] = []
    features: list[np.ndarray] = []
    start = time.perf_counter()
    with progress_bar(quiet) as progress:
        task = progress.add_task(f"evaluate {name}", total=len(pairs), rate="")
        for batch, images in _prefetched(pool, pairs, options.batch_size, options.crop_border):
            batch_rows = [
                {"image": pair.name, "restored": str(pair.restored), "gt": str(pair.gt) if pair.gt else None}
                for pair in batch
            ]
            for group in _same_size_groups(images):
                restored = np.stack([images[i][0] for i in group])
                truth = np.stack([images[i][1] for i in group]) if batch[0].gt is not None else None
                values, group_features = _score_group(restored, truth, metrics, networks, device, options)
                for key, column in values.items():
                    for index, value in zip(group, column, strict=True):
                        batch_rows[index][key] = float(value)
                if group_features is not None:
                    features.append(group_features)
            rows.extend(batch_rows)
            done = len(rows)
            progress.update(task, advance=len(batch), rate=f"{done / (time.perf_counter() - start):.1f} img/s")
    keys = [column.key for column in COLUMNS.values() if column.key != "fid"]
    summary = {key: Summary.of([row[key] for row in rows]) for key in keys if key in rows[0]}
    restored_dir = pairs[0].restored.parent
    return MethodResult(name, restored_dir, rows, summary), (np.concatenate(features) if features else None)


def _method_names(folders: Sequence[Path]) -> list[str]:
    names = [folder.resolve().name or str(folder) for folder in folders]
    if len(set(names)) < len(names):
        names = [f"{folder.resolve().parent.name}/{folder.resolve().name}" for folder in folders]
    if len(set(names)) < len(names):
        names = [str(folder) for folder in folders]
    return names


def evaluate(
    restored: str | Path,
    gt: str | Path | None = None,
    *,
    compare: Sequence[str | Path] = (),
    ref: str | Path | None = None,
    ref_stats: str | Path | None = None,
    save_ref_stats: str | Path | None = None,
    metrics: Sequence[str] | None = None,
    crop_border: int = 0,
    y_channel: bool = False,
    lpips_net: lpips.LpipsNet = DEFAULT_LPIPS_NET,
    aligned_faces: bool = True,
    identity_network: str = DEFAULT_IDENTITY_NETWORK,
    batch_size: int = DEFAULT_BATCH_SIZE,
    pairs_only: bool = False,
    recursive: bool = False,
    device: str = "auto",
    quiet: bool = False,
) -> EvaluationReport:
    """Score folders of restored faces against ground truth.

    Args:
        restored: folder of restored images (the first method).
        gt: folder of ground-truth images, paired by file stem; needed by PSNR, SSIM,
            LPIPS and identity, and the default FID reference.
        compare: more folders of restored images (other methods), scored the same way.
        ref: folder of reference images for FID (default: ``gt``).
        ref_stats: FID reference statistics (.npz) instead of ``ref``.
        save_ref_stats: write the FID reference statistics here (.npz) for later runs.
        metrics: names from :data:`METRICS`; default: all the inputs allow.
        crop_border: pixels dropped on each side for PSNR, SSIM and NIQE.
        y_channel: PSNR and SSIM on the MATLAB Y channel instead of RGB.
        lpips_net: LPIPS backbone, ``alex`` or ``vgg``.
        aligned_faces: images are FFHQ-aligned face crops (identity metric); False
            resizes whole images instead.
        identity_network: ``auto`` (ArcFace ResNet-18, the papers' view, when
            ``arcface_resnet18.pth`` is present, else the shipped MobileFaceNet, with a note),
            ``arcface``, ``mobilefacenet`` or ``dlib`` (optional packages; reports
            ``identity_dist`` instead of ``identity_cos``/``identity_deg``).
        batch_size: images per network batch.
        pairs_only: score the images that have a partner, and list the others in the notes,
            instead of refusing them.
        recursive: descend into sub-folders (images pair by relative path); without it a note
            says that sub-folders were skipped.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        quiet: no progress bars.

    Returns:
        The :class:`EvaluationReport` (one :class:`MethodResult` per folder).

    Raises:
        UsageError: bad options, unpaired or mismatched images (the message names them),
            ``dlib`` without its packages.
        WeightsError: a metric's weights are missing (``arcface`` without its file).
        ImageReadError: an unreadable image.
    """
    started = time.perf_counter()
    if ref is not None and ref_stats is not None:
        raise UsageError("give either ref or ref_stats, not both", settings=("ref", "ref_stats"))
    if crop_border < 0 or batch_size < 1:
        raise UsageError("crop_border must be >= 0 and batch_size >= 1", settings=("crop_border", "batch_size"))
    reference_dir = Path(ref) if ref is not None else (Path(gt) if gt is not None else None)
    has_reference = reference_dir is not None or ref_stats is not None
    chosen = choose_metrics(metrics, gt is not None, has_reference)
    resolved = identity.resolve_identity_network(identity_network)  # an unknown name fails early
    network = resolved if "identity" in chosen else None
    if save_ref_stats is not None and reference_dir is None:
        raise UsageError(
            "save_ref_stats needs reference images",
            hint="add ref REF_DIR or gt GT_DIR",
            settings=("save_ref_stats", "ref", "gt"),
        )
    folders = [Path(restored), *(Path(folder) for folder in compare)]
    notes: list[str] = []
    paired = gt if any(name in FULL_REFERENCE for name in chosen) else None  # NIQE and FID need no partner
    method_pairs = []
    for folder in folders:
        unmatched: list[str] = []
        pairs = pair_images(folder, paired, pairs_only=pairs_only, recursive=recursive, unmatched=unmatched)
        method_pairs.append(pairs)
        if unmatched:
            notes.append(f"{folder}: {len(unmatched)} image(s) left out without a partner: {_shown(unmatched)}")
        if not recursive and folder.is_dir() and any(path.is_dir() for path in folder.iterdir()):
            notes.append(f"{folder}: sub-folders skipped (recursive descends into them)")
    torch_device = resolve_device(device)
    with_fid = "fid" in chosen or save_ref_stats is not None
    networks = _load_networks([*chosen, "fid"] if with_fid else chosen, lpips_net, network or "", torch_device)
    if identity_network == "auto" and network == "mobilefacenet":
        notes.append(
            "identity: arcface_resnet18.pth not found, so MobileFaceNet is used (not comparable with papers' "
            "ArcFace 'Deg.'); `minerrestore weights` says where to put the file"
        )
    options = ScoringOptions(crop_border, y_channel, aligned_faces, batch_size)

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="evaluate-read") as pool:
        reference = None
        if with_fid:
            if ref_stats is not None:
                reference = FeatureStatistics.load(ref_stats)
            else:
                reference = _reference_statistics(reference_dir, networks, batch_size, pool, quiet)
            if save_ref_stats is not None:
                reference.save(save_ref_stats)
                notes.append(f"FID reference statistics saved to {save_ref_stats}")
            if reference.count and (warning := small_set_warning(reference.count, "reference")):
                notes.append(warning)
        results = []
        for name, pairs in zip(_method_names(folders), method_pairs, strict=True):
            result, features = _score_method(name, pairs, chosen, networks, torch_device, options, pool, quiet)
            if "fid" in chosen and features is not None:
                result.fid = frechet_distance(reference, FeatureStatistics.from_features(features, name))
                result.fid_count = len(features)
                if warning := small_set_warning(len(features), name):
                    notes.append(warning)
            results.append(result)

    for result in results:
        for key, item in result.summary.items():
            if item.excluded:
                why = "identical to the ground truth (PSNR inf)" if key == "psnr" else "without a value"
                if key == "niqe":
                    why = "smaller than two 96x96 blocks (NIQE undefined)"
                notes.append(f"{result.name}: {item.excluded} image(s) {why} left out of the {key} mean")
    if "fid" in chosen and reference is not None:
        reference_text = f"{reference.source} ({reference.count or 'unknown number of'} images)"
    else:
        reference_text = "none"
    variants = describe_variants(
        chosen, crop_border, y_channel, lpips_net, aligned_faces, reference_text, network or "mobilefacenet"
    )
    return EvaluationReport(
        methods=results,
        metrics=chosen,
        gt_dir=Path(gt) if gt is not None else None,
        variants=variants,
        identity_network=network,
        notes=list(dict.fromkeys(notes)),
        device=str(torch_device),
        seconds=time.perf_counter() - started,
    )
