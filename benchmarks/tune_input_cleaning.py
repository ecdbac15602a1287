"""The table behind :func:`minerrestore.severity.input_cleaning`: how hard to clean the network's input.

On *training* people (none of those the model card scores), as the card's protocol otherwise:

1. ``--images`` photos of ../shared/data/faces_hires whose people training keeps (evenly spaced
   through the sorted list; :func:`common.training_hires_photos`), their largest face aligned at
   512 px into OUT/aligned_512;
2. ``minerrestore degrade --size 512 --seed 77`` with ``paper`` and with ``miner``;
3. every degraded face area-resized to the network's size and restored at ``fidelity 1`` with
   its input cleaned by non-local means at each fixed ``--strengths`` h, and as ``restore``
   cleans it (``input_cleaning``: the file's h, raised for dark faces); NLM + unsharp for
   reference;
4. PSNR, SSIM, LPIPS-Alex and (with ``pip install -e ".[bench]"``) dlib distance against the
   ground truth at the network's size, as a markdown table on stdout and in OUT/table.md.

    python benchmarks/tune_input_cleaning.py    # 110 faces per preset: about 20 min on 2 cores
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch
from common import dlib_identity, training_hires_photos
from model_card import CLI, PRESETS, run

from minerrestore.archs.identity import MobileFaceNet
from minerrestore.baselines import classical_restore
from minerrestore.data.datasets import align_largest_face
from minerrestore.io import list_images, read_image, write_image
from minerrestore.metrics import load_lpips, lpips_distance, psnr, ssim
from minerrestore.metrics.identity import DlibIdentity, identity_similarity
from minerrestore.metrics.lpips import LPIPS
from minerrestore.restore import Restorer

SEED = 77  # not the card's 2026: other draws of the presets as well as other people
ALIGN_SIZE = 512


def area(rgb: np.ndarray, side: int) -> np.ndarray:
    """Area-resize to side x side."""
    return cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA)


def degraded_training_faces(images: int, out: Path) -> Path:
    """Steps 1 and 2: OUT/aligned_512 and OUT/<preset>/{gt,lq} (each made once); returns the aligned folder."""
    aligned = out / f"aligned_{ALIGN_SIZE}"
    aligned.mkdir(parents=True, exist_ok=True)
    for path in training_hires_photos(images):
        target = aligned / f"{path.parent.name}_{path.stem}.png"
        face = None if target.exists() else align_largest_face(read_image(path).rgb, ALIGN_SIZE)
        if face is not None:
            write_image(target, face[0])
    for preset in PRESETS:
        folder = out / preset
        if not (folder / "lq").is_dir():
            options = ["--preset", preset, "--size", str(ALIGN_SIZE), "--seed", str(SEED), "--quiet"]
            run([*CLI, "degrade", str(aligned), "--out", str(folder), *options])
    return aligned


def mean_score_cells(
    faces: np.ndarray,
    truth: np.ndarray,
    lpips: LPIPS,
    dlib: DlibIdentity | None,
    mobilefacenet: MobileFaceNet | None = None,
) -> list[str]:
    """Table cells of the mean PSNR, SSIM, LPIPS, MobileFaceNet cosine (when given) and dlib distance
    ("n/a" without dlib) of N x S x S x 3 faces against their ground truth."""
    cells = [
        f"{float(torch.as_tensor(psnr(faces, truth)).mean()):.2f}",
        f"{float(torch.as_tensor(ssim(faces, truth)).mean()):.4f}",
        f"{float(torch.as_tensor(lpips_distance(faces, truth, lpips)).mean()):.4f}",
    ]
    if mobilefacenet is not None:
        cells.append(f"{float(np.mean(identity_similarity(faces, truth, mobilefacenet)[0])):.4f}")
    cells.append("n/a" if dlib is None else f"{np.mean(dlib.distances(faces, truth)):.4f}")
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=110, help="training photos (default 110)")
    parser.add_argument("--model", default="default", help="restorer: a catalogue name or a file")
    parser.add_argument("--strengths", type=float, nargs="+", default=[0, 3, 5, 7, 10, 14], help="fixed h")
    parser.add_argument("--out", type=Path, default=Path("runs/tune_input_cleaning"))
    args = parser.parse_args()

    aligned = degraded_training_faces(args.images, args.out)
    restorer = Restorer(args.model, aligned=True, fidelity=1.0, device="cpu", precision="float32").load()
    side = restorer.network.size
    lpips, dlib = load_lpips("alex"), dlib_identity()
    lines = [
        f"{len(list_images(aligned))} training faces per preset, scored at {side} px (PSNR / SSIM / LPIPS / dlib)",
        "",
        "| preset | cleaning | PSNR ↑ | SSIM ↑ | LPIPS ↓ | dlib dist ↓ |",
        "|---|---|---|---|---|---|",
    ]
    for preset in PRESETS:
        names = [path.name for path in list_images(args.out / preset / "lq")]
        lq512 = [read_image(args.out / preset / "lq" / name).rgb for name in names]
        truth = np.stack([area(read_image(args.out / preset / "gt" / name).rgb, side) for name in names])
        crops = [area(rgb, side) for rgb in lq512]
        methods = {"NLM + unsharp": np.stack([area(classical_restore(rgb), side) for rgb in lq512])}
        methods |= {f"h {h:g}": np.stack(restorer.restore_crops(crops, [h] * len(crops))) for h in args.strengths}
        methods["restore (input_cleaning)"] = np.stack(restorer.restore_crops(crops))
        for method, faces in methods.items():
            lines.append(f"| {preset} | {method} | {' | '.join(mean_score_cells(faces, truth, lpips, dlib))} |")
            print(lines[-1], flush=True)
    (args.out / "table.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
