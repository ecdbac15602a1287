"""The default model's card table: held-out validation faces, presets ``paper`` and ``miner``.

For each preset it runs, as a user would:

1. ``minerrestore degrade`` on the validation subset (the last 10 % of the sorted names of
   ../shared/data/faces, which training never sees) with a fixed seed, at 128 px (the model's
   own size) and at 256 px (NIQE needs at least two 96 px blocks; the model restores the
   256 px input at 128 px and the pipeline enlarges the result, as ``restore --aligned`` does);
2. the non-learned baselines: the degraded input itself, plain resize (the same
   low-resolution image enlarged with bicubic instead of bilinear interpolation) and classical
   restoration (:func:`minerrestore.baselines.classical_restore`: non-local means plus unsharp mask);
3. ``minerrestore restore --aligned --upscale 1`` with each model (float32);
4. ``minerrestore evaluate --compare`` (PSNR, SSIM, LPIPS-Alex, NIQE, identity with
   ``--identity-net mobilefacenet``), whose table is the model card's; the exact command is
   printed, so anyone can reproduce it from OUT;
5. when ``dlib`` is installed (``pip install -e ".[bench]"``: dlib-bin, face-recognition-models; not a dependency
   of minerrestore), an independent identity check: the mean distance of dlib's ResNet face
   descriptors to the ground truth's (dlib calls two faces the same person below 0.6;
   :class:`minerrestore.metrics.identity.DlibIdentity`, as ``evaluate --identity-net dlib``). The
   identity column of step 4 uses MobileFaceNet, the network of the training's identity loss,
   which flatters the models; dlib's network never took part in training.

    python benchmarks/model_card.py --model scheme_D=default --model scheme_A=weights/minerrestore_a128.safetensors

Takes about 10 minutes on 2 CPU cores. Writes OUT/<preset>_<size>/{gt,lq,methods/*,evaluate.json}
and OUT/table.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
from common import SHARED, dlib_identity

from minerrestore.baselines import classical_restore
from minerrestore.data.datasets import split_names
from minerrestore.data.degradation import apply_degradation
from minerrestore.data.folders import read_manifest
from minerrestore.data.pairs import DEGRADE_MANIFEST
from minerrestore.io import list_images, read_image, write_image
from minerrestore.metrics.identity import DlibIdentity

SHARED_FACES = SHARED / "faces"
PRESETS = ("paper", "miner")
SIZES = (128, 256)
SEED = 2026
VAL_FRACTION = 0.1  # the training config's data.val_fraction
METRICS = "psnr,ssim,lpips,niqe,identity"
CLI = [sys.executable, "-m", "minerrestore"]


def run(command: list[str]) -> None:
    """Run a minerrestore command, echoing it; stop on failure."""
    print("$", " ".join(["minerrestore", *command[len(CLI) :]]), flush=True)
    code = subprocess.run(command).returncode
    if code:
        sys.exit(code)


def link_or_copy(source: Path, destination: Path) -> None:
    """Hard link (or copy) ``source`` to ``destination``."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def validation_folder(faces: Path, out: Path) -> Path:
    """OUT/validation_faces: links to the held-out faces (the trainer's sorted-name split)."""
    _, held_out = split_names(list_images(faces), VAL_FRACTION)
    folder = out / "validation_faces"
    folder.mkdir(parents=True, exist_ok=True)
    for path in held_out:
        if not (folder / path.name).exists():
            link_or_copy(path, folder / path.name)
    return folder


def baselines(preset_dir: Path) -> list[Path]:
    """Write methods/{degraded_input,plain_resize,classical} from the degrade manifest."""
    methods = preset_dir / "methods"
    folders = [methods / name for name in ("degraded_input", "plain_resize", "classical")]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    for row in read_manifest(preset_dir / DEGRADE_MANIFEST):
        name = Path(row["lq"]).name
        lq_path, gt_path = preset_dir / row["lq"], preset_dir / row["gt"]
        grey = "grey" in row["params"]
        if not (folders[0] / name).exists():
            link_or_copy(lq_path, folders[0] / name)
        gt = read_image(gt_path).rgb
        write_image(folders[1] / name, apply_degradation(gt, row["params"], cv2.INTER_CUBIC), grey=grey)
        write_image(folders[2] / name, classical_restore(read_image(lq_path).rgb), grey=grey)
    return folders


def restore_with(model: str, name: str, preset_dir: Path) -> Path:
    """``minerrestore restore --aligned --fidelity 1`` into methods/<name>: the network as trained
    (restore's default ``--fidelity auto`` is measured on whole photos by ``bench_severity.py``)."""
    target = preset_dir / "methods" / name
    scratch = preset_dir / f"restore_{name}"
    if target.exists():
        shutil.rmtree(target)
    if scratch.exists():
        shutil.rmtree(scratch)
    run([*CLI, "restore", str(preset_dir / "lq"), "--out", str(scratch), "--aligned", "--model", model,
         "--upscale", "1", "--fidelity", "1", "--precision", "float32", "--quiet"])  # fmt: skip
    os.replace(scratch / "restored_imgs", target)
    shutil.rmtree(scratch)
    return target


def dlib_distances(dlib: DlibIdentity, gt_dir: Path, folders: list[Path]) -> dict[str, float]:
    """Mean dlib descriptor distance of each folder's faces (same names as ``gt_dir``) to the ground truth."""
    totals = dict.fromkeys((folder.name for folder in folders), 0.0)
    names = [path.name for path in list_images(gt_dir)]
    for name in names:
        reference = dlib.reference(dlib.prepare(read_image(gt_dir / name).rgb))
        for folder in folders:
            totals[folder.name] += dlib.distance_to(dlib.prepare(read_image(folder / name).rgb), reference)
    return {method: total / len(names) for method, total in totals.items()}


def markdown_rows(summary: dict, label: str, dlib_distances: dict[str, float] | None) -> list[str]:
    """One markdown table row per method of an ``evaluate --json`` document."""
    keys = [("psnr", 2), ("ssim", 4), ("lpips", 4), ("niqe", 3), ("identity_cos", 4)]
    rows = []
    for method in summary["methods"]:
        means = [method["summary"][key]["mean"] for key, _ in keys]
        cells = ["n/a" if mean is None else f"{mean:.{digits}f}" for mean, (_, digits) in zip(means, keys, strict=True)]
        cells.append("n/a" if dlib_distances is None else f"{dlib_distances[method['method']]:.4f}")
        rows.append(f"| {label} | {method['method']} | " + " | ".join(cells) + " |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=Path, default=SHARED_FACES, help="the training faces folder")
    parser.add_argument("--out", type=Path, default=Path("runs/model_card"))
    parser.add_argument(
        "--size", type=int, action="append", choices=SIZES, help="ground-truth side (repeatable; default both)"
    )
    parser.add_argument(
        "--model", action="append", default=[], metavar="NAME=MODEL", help="a row: NAME=default|RUN_DIR|FILE"
    )
    args = parser.parse_args()
    models = [item.split("=", 1) for item in args.model or ["scheme_D=default"]]
    faces = validation_folder(args.faces, args.out)
    independent = dlib_identity()
    table = [
        "| preset @ size | method | PSNR ↑ | SSIM ↑ | LPIPS ↓ | NIQE ↓ | identity cos ↑ | dlib dist ↓ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for size, preset in ((size, preset) for size in args.size or SIZES for preset in PRESETS):
        preset_dir = args.out / f"{preset}_{size}"
        if not (preset_dir / DEGRADE_MANIFEST).exists():
            run([*CLI, "degrade", str(faces), "--out", str(preset_dir), "--preset", preset, "--size", str(size),
                 "--seed", str(SEED), "--quiet"])  # fmt: skip
        folders = baselines(preset_dir)
        folders += [restore_with(model, name, preset_dir) for name, model in models]
        report = preset_dir / "evaluate.json"
        first, *others = folders
        compare = [argument for folder in others for argument in ("--compare", str(folder))]
        run([*CLI, "evaluate", str(first), "--gt", str(preset_dir / "gt"), *compare, "--metrics", METRICS,
             "--identity-net", "mobilefacenet", "--json", str(report)])  # fmt: skip
        distances = None if independent is None else dlib_distances(independent, preset_dir / "gt", folders)
        table += markdown_rows(json.loads(report.read_text(encoding="utf-8")), f"{preset} @ {size}", distances)
    (args.out / "table.md").write_text("\n".join(table) + "\n", encoding="utf-8")
    print("\n".join(table))


if __name__ == "__main__":
    main()
