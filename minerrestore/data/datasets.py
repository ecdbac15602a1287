"""Torch datasets of (low-quality, ground-truth) face pairs, for training and evaluation: one stack.

Every pair is made by one recipe, :class:`PairRecipe`: the ground truth is read and made a
square, and its low-quality twin is either read from its file (paired data) or degraded on the
fly with a preset (the paper's Eq. 14, ../shared/docs/METHOD.md §1.2, or ``miner``), like
GFP-GAN's ``FFHQDegradationDataset`` (``gfpgan/data/ffhq_degradation_dataset.py``, Apache-2.0)
but deterministic: a pair depends only on (seed, epoch, file name). Three datasets use it:

- :class:`DegradedFaceDataset` degrades a folder of high-quality faces on the fly. At epoch 0
  it is exactly the pair ``minerrestore degrade`` writes with the same seed, size and fit.
- :class:`PairedFaceDataset` reads pairs that ``minerrestore degrade`` wrote:
  ``ROOT/gt/<name>`` and ``ROOT/lq/<name>`` (use ``OUT/train`` or ``OUT/test`` after
  ``--split``).
- :class:`FacePairs` is what ``minerrestore train`` feeds its networks, in the batches of
  :class:`IterationSampler`: the faces found (and aligned once) by :func:`plan_data`, several
  presets and scales, random flips, and each face's facial-component boxes.

Each sample of the two public datasets is a dict::

    {"lq": Tensor 3xHxW, "gt": Tensor 3xHxW, "path": str}

float32 RGB in [-1, 1], so ``torch.utils.data.DataLoader`` batches them to NCHW tensors
(and ``path`` to a list of strings). Typical training loop::

    dataset = DegradedFaceDataset("faces/", DegradationSettings(preset="paper", size=512, seed=0))
    loader = DataLoader(dataset, batch_size=12, shuffle=True, num_workers=4, drop_last=True)
    for epoch in range(epochs):
        dataset.set_epoch(epoch)  # fresh degradations each epoch; set it before iterating
        for batch in loader:
            restored = net(batch["lq"])  # NCHW in [-1, 1]
            loss = criterion(restored, batch["gt"])

Datasets are plain picklable objects (file list, preset, seed), so loader workers work
with any start method. Workers get a copy of the dataset when an epoch's iteration starts,
so call ``set_epoch`` before iterating, and do not combine it with ``persistent_workers=True``
(the workers would keep epoch 0). The public datasets apply no random flip or crop: add them
in the training loop if wanted. Grey inputs are replicated to three channels and alpha is
ignored, as in the folder commands.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from minerrestore import losses as L
from minerrestore.baselines import nlm_denoise
from minerrestore.data.degradation import DegradationSettings, apply_degradation_at_scale, prepare_gt, sample_params
from minerrestore.data.folders import image_seed, relative_name
from minerrestore.data.presets import Preset, load_preset
from minerrestore.data.split import folder_identities, held_out_identities, split_names
from minerrestore.errors import ConfigError, UsageError
from minerrestore.io import IMAGE_SUFFIXES, atomic_write_text, list_images, read_image, write_image

if TYPE_CHECKING:
    from minerrestore.train.config import Config
    from minerrestore.train.run import RunLayout

_T = TypeVar("_T")


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 RGB -> 3xHxW float32 tensor in [-1, 1]."""
    channels_first = image.transpose(2, 0, 1).astype(np.float32)  # one contiguous, writable copy
    return torch.from_numpy(channels_first).div_(127.5).sub_(1.0)


def _pick(options: Sequence[_T], rng: np.random.Generator) -> _T:
    """One of ``options`` drawn with ``rng``; a single option draws nothing (keeps the stream)."""
    return options[int(rng.integers(len(options)))] if len(options) > 1 else options[0]


@dataclass(frozen=True)
class FaceItem:
    """One face of a dataset: its ground truth and, for paired data, its low-quality twin.

    Attributes:
        name: name relative to its folder (seeds its degradations).
        gt: ground-truth image (an aligned crop, the user's aligned face, or any image).
        lq: the low-quality twin for paired data; None when degraded on the fly.
        landmarks: (5, 2) landmarks in the coordinates of a ``out_size`` crop, as a tuple
            (training only; empty for the public datasets).
    """

    name: str
    gt: Path
    lq: Path | None
    landmarks: tuple[tuple[float, float], ...]


class PairRecipe:
    """How the (lq, gt) pair of a face is made at an epoch: the one recipe of every dataset here.

    The twin is read from the face's ``lq`` file, or degraded on the fly with one of ``presets``
    at one of ``scales`` (:func:`minerrestore.data.degradation.apply_degradation_at_scale`), each drawn
    per pair (a single option draws nothing). Everything random comes from
    ``image_seed(seed, name, epoch)``, so a pair does not depend on workers, order or process.

    Args:
        size: side of the square faces, or None to keep the images as read (paired data).
        presets: loaded degradation presets (unused for paired data).
        seed: global seed.
        fit: ``"crop"`` (centre square) or ``"stretch"`` (:func:`minerrestore.data.degradation.prepare_gt`).
        scales: degradation scales.
        hflip: mirror half of the pairs.
    """

    def __init__(
        self,
        size: int | None,
        presets: Sequence[Preset] = (),
        seed: int = 0,
        fit: str = "crop",
        scales: Sequence[int] = (1,),
        hflip: bool = False,
    ) -> None:
        self.size = size
        self.presets = list(presets)
        self.seed = seed
        self.fit = fit
        self.scales = tuple(scales)
        self.hflip = hflip

    def rng(self, name: str, epoch: int) -> np.random.Generator:
        """The random stream of face ``name`` at ``epoch``."""
        return np.random.default_rng(image_seed(self.seed, name, epoch))

    def draw_params(self, rng: np.random.Generator) -> dict[str, Any]:
        """A preset (when there are several) and its degradation parameters, drawn from ``rng``."""
        return sample_params(_pick(self.presets, rng), rng)

    def _read(self, path: Path) -> np.ndarray:
        rgb = read_image(path).rgb
        return rgb if self.size is None else prepare_gt(rgb, self.size, self.fit)

    def make(self, item: FaceItem, epoch: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """(lq, gt, mirrored) uint8 HxWx3 RGB arrays of ``item`` at ``epoch``.

        Raises:
            UsageError: a paired low-quality image differs in size from its ground truth.
        """
        rng = self.rng(item.name, epoch)
        gt = self._read(item.gt)
        if item.lq is not None:
            lq = self._read(item.lq)
            if lq.shape != gt.shape:
                raise UsageError(f"{item.lq}: size {lq.shape[:2]} differs from its gt {gt.shape[:2]}")
        else:
            lq = apply_degradation_at_scale(gt, self.draw_params(rng), _pick(self.scales, rng))
        mirrored = self.hflip and bool(rng.random() < 0.5)
        if mirrored:
            gt, lq = np.ascontiguousarray(gt[:, ::-1]), np.ascontiguousarray(lq[:, ::-1])
        return lq, gt, mirrored


# =============================================================================================
# the public datasets


def _require_images(paths: list[Path], root: Path) -> list[Path]:
    if not paths:
        raise UsageError(f"{root}: no images found", hint="point the dataset at a folder of face images")
    return paths


class _FolderPairs(Dataset):
    """Faces of a folder made into pairs by a recipe: ``dataset[i] -> {"lq", "gt", "path"}``."""

    def __init__(self, items: list[FaceItem], recipe: PairRecipe) -> None:
        self.items = items
        self.recipe = recipe
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(lq, gt) of sample ``index`` as HxWx3 uint8 RGB arrays (for inspection)."""
        lq, gt, _ = self.recipe.make(self.items[index], self.epoch)
        return lq, gt

    def __getitem__(self, index: int) -> dict[str, Any]:
        lq, gt = self.pair(index)
        return {"lq": to_tensor(lq), "gt": to_tensor(gt), "path": str(self.items[index].gt)}


class DegradedFaceDataset(_FolderPairs):
    """High-quality faces degraded on the fly: ``dataset[i] -> {"lq", "gt", "path"}``.

    Args:
        root: folder of high-quality face images.
        settings: preset (a name, YAML path or loaded Preset), ground-truth size, fit and global
            seed; the same (settings, epoch, index) always gives the same pair.
            ``DegradationSettings()`` when None.
        recursive: include sub-folders.

    Raises:
        UsageError: ``root`` has no images.
        ConfigError: the preset is invalid.
    """

    def __init__(
        self,
        root: str | Path,
        settings: DegradationSettings | None = None,
        recursive: bool = False,
    ) -> None:
        self.root = Path(root)
        paths = _require_images(list_images(self.root, recursive), self.root)
        self.settings = settings or DegradationSettings()
        self.preset = load_preset(self.settings.preset)
        items = [FaceItem(relative_name(path, self.root), path, None, ()) for path in paths]
        recipe = PairRecipe(self.settings.size, [self.preset], self.settings.seed, self.settings.fit)
        super().__init__(items, recipe)

    @property
    def paths(self) -> list[Path]:
        """The high-quality images, sorted."""
        return [item.gt for item in self.items]

    def set_epoch(self, epoch: int) -> None:
        """Draw different degradations for every image from now on (call once per epoch)."""
        self.epoch = epoch

    def params(self, index: int) -> dict[str, Any]:
        """The degradation parameters of sample ``index`` at the current epoch (a manifest ``params`` dict)."""
        return self.recipe.draw_params(self.recipe.rng(self.items[index].name, self.epoch))


class PairedFaceDataset(_FolderPairs):
    """Pairs written by ``minerrestore degrade``: ``root/gt/<name>`` with ``root/lq/<name>``.

    Args:
        root: a folder holding ``gt/`` and ``lq/`` (``OUT``, ``OUT/train`` or ``OUT/test``).
        recursive: include sub-folders of ``gt/``.

    Raises:
        UsageError: ``gt/`` is empty, or a ground truth has no low-quality twin.
    """

    def __init__(self, root: str | Path, recursive: bool = False) -> None:
        self.root = Path(root)
        folders = _paired_folders(self.root)
        if folders is None:
            raise UsageError(
                f"{self.root}: expected sub-folders gt/ and lq/",
                hint="give the out_dir folder of minerrestore degrade (or its train/ or test/)",
                settings=("out_dir",),
            )
        gt_dir, lq_dir = folders
        gt_paths = _require_images(list_images(gt_dir, recursive), gt_dir)
        names = [path.relative_to(gt_dir) for path in gt_paths]
        missing = [str(lq_dir / name) for name in names if not (lq_dir / name).is_file()]
        if missing:
            raise UsageError(f"{len(missing)} ground truth(s) without a low-quality twin, e.g. {missing[0]}")
        pairs = zip(gt_paths, names, strict=True)
        items = [FaceItem(name.as_posix(), path, lq_dir / name, ()) for path, name in pairs]
        super().__init__(items, PairRecipe(None))

    @property
    def gt_paths(self) -> list[Path]:
        """The ground-truth images, sorted."""
        return [item.gt for item in self.items]

    @property
    def lq_paths(self) -> list[Path]:
        """The low-quality twins, in the order of :attr:`gt_paths`."""
        return [item.lq for item in self.items if item.lq is not None]


# =============================================================================================
# training's pairs and batch order


class FacePairs(Dataset):
    """(lq, gt, component boxes) for ``(index, epoch)`` keys: deterministic given the seed.

    The pairs are made by a :class:`PairRecipe` (``stretch`` fit): degraded on the fly with one
    of ``presets``, or read from paired files; ``hflip`` mirrors half of the samples (the eye
    boxes swap accordingly).

    Args:
        items: the faces.
        size: side of the square faces.
        presets: degradation presets (names or files).
        seed: global seed.
        hflip: random horizontal flip.
        eye_enlarge: eye-box enlargement (see :func:`minerrestore.losses.component_boxes`).
        scales: degradation scales, one drawn per sample
            (:func:`minerrestore.data.degradation.apply_degradation_at_scale`).
        input_denoise: non-local-means ``h`` of the low-quality faces, as ``restore`` cleans the
            network's input (:attr:`minerrestore.archs.restorer.RestorerConfig.input_denoise`; 0: none).
    """

    def __init__(
        self,
        items: Sequence[FaceItem],
        size: int,
        presets: Sequence[str],
        seed: int,
        hflip: bool,
        eye_enlarge: float,
        scales: Sequence[int] = (1,),
        input_denoise: float = 0.0,
    ) -> None:
        self.items = list(items)
        self.input_denoise = input_denoise
        self.recipe = PairRecipe(size, [load_preset(p) for p in presets], seed, "stretch", scales, hflip)
        boxes = []  # computed once per face: (boxes, boxes of the mirrored face)
        for item in self.items:
            points = np.asarray(item.landmarks, dtype=np.float32)
            mirrored = L.flip_landmarks(points, size)
            boxes.append(np.stack([L.component_boxes(p, eye_enlarge) for p in (points, mirrored)]))
        self.boxes = np.stack(boxes) if boxes else np.zeros((0, 2, 3, 4), np.float32)

    def __len__(self) -> int:
        return len(self.items)

    def pair(self, index: int, epoch: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """(lq, gt, mirrored) uint8 HxWx3 RGB arrays of face ``index`` at ``epoch`` (lq as the network sees it)."""
        lq, gt, mirrored = self.recipe.make(self.items[index], epoch)
        return nlm_denoise(lq, self.input_denoise), gt, mirrored

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, epoch = key
        lq, gt, mirrored = self.pair(index, epoch)
        return {"lq": to_tensor(lq), "gt": to_tensor(gt), "boxes": torch.from_numpy(self.boxes[index, int(mirrored)])}


class IterationSampler(Sampler[list[tuple[int, int]]]):
    """Batches of ``(index, epoch)`` keys for iterations ``start`` .. ``end`` - 1 of this rank.

    Each epoch is a permutation of the faces drawn from (seed, epoch); every iteration takes
    the next ``batch_size * world_size`` faces (an epoch's remainder is dropped) and this
    rank takes its slice. The batch of an iteration is a pure function of its number, so a
    resumed run sees exactly the batches an uninterrupted run would.

    Args:
        num_items: number of faces.
        batch_size: faces per rank and iteration.
        seed: seed of the permutations.
        start: first iteration (0-based, i.e. iterations already done).
        end: iteration to stop before.
        rank: this process's rank.
        world_size: number of processes.
    """

    def __init__(
        self, num_items: int, batch_size: int, seed: int, start: int, end: int, rank: int = 0, world_size: int = 1
    ) -> None:
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.start = start
        self.end = end
        self.rank = rank
        self.world_size = world_size
        self.steps_per_epoch = num_items // (batch_size * world_size)
        if self.steps_per_epoch < 1:
            raise UsageError(
                f"{num_items} training faces are fewer than one batch ({batch_size} x {world_size} processes)",
                hint="lower data.batch_size or add faces",
            )

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def permutation(self, epoch: int) -> list[int]:
        """The order of the faces in ``epoch``."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.num_items, generator=generator).tolist()

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order: list[int] = []
        current = -1
        global_batch = self.batch_size * self.world_size
        for iteration in range(self.start, self.end):
            epoch, step = divmod(iteration, self.steps_per_epoch)
            if epoch != current:
                order, current = self.permutation(epoch), epoch
            begin = step * global_batch + self.rank * self.batch_size
            yield [(index, epoch + 1) for index in order[begin : begin + self.batch_size]]


# =============================================================================================
# training's faces: found, checked and aligned once per run


@dataclass(frozen=True)
class DataPlan:
    """The faces a run trains and validates on, and what was skipped.

    Attributes:
        train: training faces, sorted by name (folder by folder when there are several).
        val: validation faces, sorted likewise.
        skipped: ``name: reason`` of images left out (no face found, unreadable).
        source: where the faces came from (for the log).
    """

    train: tuple[FaceItem, ...]
    val: tuple[FaceItem, ...]
    skipped: tuple[str, ...]
    source: str


def _template_landmarks(size: int) -> tuple[tuple[float, float], ...]:
    from minerrestore.face import template_for

    return tuple((float(x), float(y)) for x, y in template_for(size))


def _aligned_items(root: Path, paths: Sequence[Path], size: int) -> list[FaceItem]:
    """Faces that already are FFHQ-aligned: their landmarks are the template's."""
    template = _template_landmarks(size)
    return [FaceItem(path.relative_to(root).as_posix(), path, None, template) for path in paths]


def _paired_folders(root: Path) -> tuple[Path, Path] | None:
    gt, lq = root / "gt", root / "lq"
    return (gt, lq) if gt.is_dir() and lq.is_dir() else None


def _image_root(root: Path) -> Path:
    """Where a data folder's images are: its ``gt/`` for a paired folder, else the folder."""
    return root / "gt" if _paired_folders(root) else root


def _list_faces(folder: str, key: str) -> tuple[Path, list[Path]]:
    """The images of a data folder and its sub-folders (of its ``gt/`` for a paired folder), sorted.

    Raises:
        UsageError: the folder is missing or holds no image.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise UsageError(f"{key}: {root} is not a folder", hint=f"set {key}=/path/to/faces")
    paths = list_images(_image_root(root), recursive=True)
    if not paths:
        raise UsageError(f"{key}: no images in {root}", hint=f"image files end in {', '.join(IMAGE_SUFFIXES)}")
    return root, paths


def _readable(root: Path, paths: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """Paths whose image header can be read, and ``name: reason`` of the others (a fast check)."""
    from PIL import Image, UnidentifiedImageError

    good, bad = [], []
    for path in paths:
        try:
            with Image.open(path) as image:
                image.size  # noqa: B018  (reads the header)
            good.append(path)
        except (OSError, UnidentifiedImageError) as exc:
            bad.append(f"{path.relative_to(root).as_posix()}: unreadable ({exc})")
    return good, bad


def _paired_items(root: Path, paths: Sequence[Path], size: int) -> list[FaceItem]:
    gt_dir, lq_dir = root / "gt", root / "lq"
    items = []
    for path in paths:
        name = path.relative_to(gt_dir).as_posix()
        lq = lq_dir / name
        if not lq.is_file():
            raise UsageError(
                f"{path}: no low-quality twin {lq}",
                hint="give the out_dir folder of minerrestore degrade",
                settings=("out_dir",),
            )
        items.append(FaceItem(name, path, lq, _template_landmarks(size)))
    return items


def align_largest_face(rgb: np.ndarray, size: int, detector: str = "yunet") -> tuple[np.ndarray, np.ndarray] | None:
    """The largest face of a photo aligned onto the FFHQ template, or None when no face is found.

    Args:
        rgb: HxWx3 uint8 RGB photo.
        size: side of the square crop.
        detector: a name of :data:`minerrestore.face.DETECTORS`.

    Returns:
        The (size, size, 3) uint8 crop and the face's 5 landmarks in the crop's pixels, (5, 2) float64.
    """
    from minerrestore.face import detect_faces, estimate_affine, get_largest_face, warp_face

    faces = detect_faces(rgb, detector=detector)
    if not faces:
        return None
    face = get_largest_face(faces)
    affine = estimate_affine(face.landmarks, size)
    points = np.asarray(face.landmarks, dtype=np.float64) @ affine[:, :2].T + affine[:, 2]
    return warp_face(rgb, affine, size), points


def _align_one(path: Path, root: Path, out_dir: Path, size: int, detector: str) -> dict[str, Any]:
    """Detect the largest face of ``path``, align it onto the FFHQ template, save the crop (run_batch worker)."""
    aligned = align_largest_face(read_image(path).rgb, size, detector)
    if aligned is None:
        raise UsageError(f"{path}: no face found, skipped")
    crop, points = aligned
    crop_name = f"{path.relative_to(root).as_posix()}.png"  # sub-folders mirrored
    out = out_dir / crop_name
    out.parent.mkdir(parents=True, exist_ok=True)
    write_image(out, crop, protect=[path])
    return {"crop": crop_name, "landmarks": np.round(points, 3).tolist()}


def _align_folder(
    paths: Sequence[Path], root: Path, cache: Path, size: int, detector: str, workers: int, quiet: bool
) -> tuple[list[FaceItem], list[str]]:
    """Align ``paths`` into ``cache`` once (``cache/index.json`` remembers the result)."""
    from minerrestore.batch import run_batch

    index_file = cache / "index.json"
    names = [path.relative_to(root).as_posix() for path in paths]
    if index_file.is_file():
        index = json.loads(index_file.read_text(encoding="utf-8"))
        if index.get("names") != names or index.get("size") != size:
            raise UsageError(
                f"{cache}: aligned faces of a different image list or size",
                hint="start a new run (another train.out_dir) when the data changed",
            )
    else:
        process = partial(_align_one, root=root, out_dir=cache, size=size, detector=detector)
        description = f"aligning faces ({cache.name})"
        report = run_batch(list(paths), process, workers=workers, description=description, quiet=quiet)
        entries = {}
        for name, result in zip(names, report.results, strict=True):
            entries[name] = result.info if result.status == "done" else {"error": result.error}
        index = {"names": names, "size": size, "faces": entries}
        atomic_write_text(index_file, json.dumps(index, indent=1))
    items, skipped = [], []
    for name in names:
        entry = index["faces"][name]
        if "error" in entry:
            skipped.append(f"{name}: {entry['error']}")
            continue
        landmarks = tuple((float(x), float(y)) for x, y in entry["landmarks"])
        items.append(FaceItem(name, cache / entry["crop"], None, landmarks))
    return items, skipped


def check_data_folders(config: Config) -> None:
    """Raise a clear error for a data folder that is unset, missing or empty (fast, before any work)."""
    data = config.data
    if data.paired_dir is None and data.train_dir is None:
        raise ConfigError(
            "data.train_dir is not set",
            hint="pass data.train_dir=/path/to/faces (high-quality faces) or data.paired_dir=DEGRADE_OUT",
        )
    if data.paired_dir is not None and _paired_folders(Path(data.paired_dir).expanduser()) is None:
        raise UsageError(
            f"data.paired_dir: {data.paired_dir} has no gt/ and lq/ sub-folders",
            hint="give the out_dir folder of minerrestore degrade (or its train/ or test/)",
            settings=("out_dir",),
        )
    folders = [("data.paired_dir", data.paired_dir)] if data.paired_dir is not None else []
    if data.paired_dir is None:
        folders += [("data.train_dir", folder) for folder in data.train_folders]
    folders += [("data.val_dir", data.val_dir)] if data.val_dir is not None else []
    for key, folder in folders:
        _list_faces(folder, key)
    if data.paired_dir is None:
        _folder_prefixes([Path(folder).expanduser() for folder in data.train_folders])


def _folder_prefixes(roots: Sequence[Path]) -> list[str]:
    """Name prefixes that keep the faces of several folders apart: none for one folder, else ``NAME/``.

    Raises:
        ConfigError: two folders of ``data.train_dir`` have the same name.
    """
    if len(roots) < 2:
        return [""] * len(roots)
    names = [root.resolve().name for root in roots]
    twins = sorted({name for name in names if names.count(name) > 1})
    if twins:
        raise ConfigError(
            f"data.train_dir: several folders are named {twins[0]}",
            hint="faces are named after their folder: give each folder of data.train_dir its own name",
        )
    return [f"{name}/" for name in names]


def _round_robin(sizes: Sequence[int], budget: int | None) -> list[int]:
    """How many of each list to take so that ``budget`` items are taken in turn from each (all when None)."""
    if budget is None or budget >= sum(sizes):
        return list(sizes)
    counts = [0] * len(sizes)
    while budget > 0:
        for i, size in enumerate(sizes):
            if budget > 0 and counts[i] < size:
                counts[i] += 1
                budget -= 1
    return counts


def split_folders(
    folders: Sequence[tuple[Path, Sequence[Path]]], split: str, fraction: float, key: str = "data.train_dir"
) -> list[tuple[list[Path], list[Path]]]:
    """(training, validation) images of each ``(root, sorted images)`` folder.

    ``split="names"``: the last ``fraction`` of each folder's sorted names (:func:`split_names`);
    ``"identity"``: the images of the people :func:`~minerrestore.data.split.held_out_identities`
    holds out, in every folder (identities from :func:`~minerrestore.data.split.folder_identities`).
    """
    if split == "names":
        return [split_names(paths, fraction) for _, paths in folders]
    identities = [folder_identities(_image_root(root), paths, key) for root, paths in folders]
    held = held_out_identities(identities, fraction)
    result = []
    for (_, paths), names in zip(folders, identities, strict=True):
        pairs = list(zip(paths, names, strict=True))
        result.append(([p for p, n in pairs if n not in held], [p for p, n in pairs if n in held]))
    return result


def plan_data(config: Config, layout: RunLayout, quiet: bool = False) -> DataPlan:
    """Find the training and validation faces; align them once into the run folder when needed.

    Several training folders are split together (``data.split``), their faces named
    ``FOLDER/relative/path`` and aligned into ``aligned/{train,val}/FOLDER``; ``data.max_images``
    and ``log.val_images`` take faces from each folder in turn.

    Raises:
        UsageError: a data folder is missing or empty, or no usable face is left.
    """
    data = config.data
    check_data_folders(config)
    key = "data.paired_dir" if data.paired_dir is not None else "data.train_dir"
    names = [data.paired_dir] if data.paired_dir is not None else list(data.train_folders)
    folders = [_list_faces(str(name), key) for name in names]
    roots = [root for root, _ in folders]
    prefixes = _folder_prefixes(roots)
    splits = split_folders(folders, data.split, 0.0 if data.val_dir else data.val_fraction, key)
    if data.paired_dir is None:
        where = ", ".join(map(str, roots))
        source = f"{'aligned ' if data.aligned else ''}faces in {where}, degraded with {', '.join(data.presets)}"
        if data.degrade_scales != (1,):
            source += f" at scales {', '.join(map(str, data.degrade_scales))}"
    else:
        source = f"pairs (gt/, lq/) in {roots[0]}"
    if data.val_dir is not None:
        val_root, val_paths = _list_faces(data.val_dir, "data.val_dir")
        val_folders = [(val_root, val_paths, "")]
    else:
        val_folders = [(root, val, prefix) for root, (_, val), prefix in zip(roots, splits, prefixes, strict=True)]
    train_counts = _round_robin([len(train) for train, _ in splits], data.max_images)
    val_counts = _round_robin([len(paths) for _, paths, _ in val_folders], config.log.val_images)
    train, skipped, val, skipped_val = [], [], [], []
    for root, (paths, _), prefix, count in zip(roots, splits, prefixes, train_counts, strict=True):
        items, lines = _items(root, paths[:count], config, layout.aligned / "train" / prefix, quiet)
        train += [replace(item, name=prefix + item.name) for item in items]
        skipped += [prefix + line for line in lines]
    for (root, paths, prefix), count in zip(val_folders, val_counts, strict=True):
        items, lines = _items(root, paths[:count], config, layout.aligned / "val" / prefix, quiet)
        val += [replace(item, name=prefix + item.name) for item in items]
        skipped_val += [prefix + line for line in lines]
    if not train:
        raise UsageError(f"no usable training face ({source}; {len(skipped)} skipped)", hint="check the data folder")
    return DataPlan(tuple(train), tuple(val), tuple(skipped + skipped_val), source)


def _items(
    root: Path, paths: Sequence[Path], config: Config, cache: Path, quiet: bool
) -> tuple[list[FaceItem], list[str]]:
    """Faces of one folder: pairs, aligned faces, or photos aligned once into ``cache``; and the skipped ones."""
    data, size = config.data, config.model.out_size
    if _paired_folders(root) is not None:
        good, skipped = _readable(root / "gt", paths)
        return _paired_items(root, good, size), skipped
    if data.aligned:
        good, skipped = _readable(root, paths)
        return _aligned_items(root, good, size), skipped
    workers = max(1, data.num_workers)
    return _align_folder(paths, root, cache, size, data.detector, workers, quiet)


__all__ = [
    "DataPlan",
    "DegradedFaceDataset",
    "FaceItem",
    "FacePairs",
    "IterationSampler",
    "PairRecipe",
    "PairedFaceDataset",
    "align_largest_face",
    "check_data_folders",
    "plan_data",
    "split_folders",
    "split_names",
    "to_tensor",
]
