"""The tables behind the paste's settings in :mod:`minerrestore.severity`: ``deblur``, ``sharpen``, ``photo_detail``.

Two protocols on *training* people (none of those the model card or ``bench_severity.py`` scores):

* ``photos``: ``bench_severity.py``'s protocol: ``--images`` photos of ../shared/data/faces_hires
  whose people training keeps (:func:`common.training_hires_photos`), shrunk to 640 px, degraded
  as whole photos at its levels and seeds, restored with the defaults; scored on the face region.
* ``aligned``: ``tune_input_cleaning.py``'s faces (110 training people aligned at 512, degraded
  with ``paper`` and ``miner``, seed 77), restored as the model card restores
  (``--aligned --fidelity 1 --upscale 1``), area-resized to the network's size and scored there,
  beside the degraded input and NLM + unsharp.

Each variant changes one setting from ``restore``'s (through ``Restorer.restore``'s
``steady_estimate`` hook, which swaps each face's estimate for the variant's):

* ``no_deblur``: the photo's face is not deconvolved (its ``photo_blur`` set to 0);
* ``sharpen_1`` / ``no_sharpen``: sharpening up to 1 (twice ``restore``'s) / none;
* ``dark_detail``: the photo's finer detail kept on a dark face too (``photo_detail`` 1).

    python benchmarks/tune_paste.py     # both protocols, every variant: about 21 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from bench_severity import LEVELS, Scorer, degraded_photos, scored_records, table
from common import dlib_identity, training_hires_photos
from model_card import PRESETS
from tune_input_cleaning import area, degraded_training_faces, mean_score_cells

from minerrestore.archs.identity import load_mobilefacenet
from minerrestore.baselines import classical_restore
from minerrestore.io import list_images, read_image
from minerrestore.metrics import load_lpips
from minerrestore.restore import EstimateSteady, Restorer
from minerrestore.severity import DegradationEstimate


@dataclass(frozen=True)
class VariantEstimate(DegradationEstimate):
    """A face's estimate with the paste's sharpening scaled and, optionally, a dark face's detail kept."""

    sharpen_scale: float = 1.0
    keep_dark_detail: bool = False

    @property
    def sharpen(self) -> float:
        """``restore``'s amount times ``sharpen_scale``."""
        return super().sharpen * self.sharpen_scale

    @property
    def photo_detail(self) -> float:
        """1 with ``keep_dark_detail``, else ``restore``'s."""
        return 1.0 if self.keep_dark_detail else super().photo_detail


VARIANTS: dict[str, dict[str, Any]] = {
    "no_deblur": {"photo_blur": 0.0},
    "sharpen_1": {"sharpen_scale": 2.0},
    "no_sharpen": {"sharpen_scale": 0.0},
    "dark_detail": {"keep_dark_detail": True},
}
"""Variant name -> the fields of :class:`VariantEstimate` it changes."""


def variant(changes: dict[str, Any]) -> EstimateSteady:
    """The ``steady_estimate`` hook that applies ``changes`` to every face's estimate."""
    return lambda _position, estimate: VariantEstimate(**{**asdict(estimate), **changes})


def restored(restorer: Restorer, image: np.ndarray, variants: list[str]) -> dict[str, np.ndarray]:
    """``restore``'s output and each variant's."""
    outputs = {"restore": restorer.restore(image).image}
    for name in variants:
        outputs[name] = restorer.restore(image, steady_estimate=variant(VARIANTS[name])).image
    return outputs


def photos_table(images: int, levels: list[str], variants: list[str]) -> list[str]:
    """The ``photos`` protocol's markdown table."""
    restorer = Restorer(upscale=1).load()
    scorer = Scorer(dlib_identity())
    records: list[dict[str, Any]] = []
    photos = training_hires_photos(images)
    for index, path, clean, face, degraded in degraded_photos(photos, levels):
        for level, image in degraded.items():
            outputs = {"input": image, **restored(restorer, image, variants)}
            records += scored_records(scorer, path.name, level, clean, face, outputs)
        print(f"[{index + 1}/{len(photos)}] {path.name}", flush=True)
    people = len({r["photo"] for r in records})
    return [f"Whole photos: {people} training people", "", *table(records, levels, ["input", "restore", *variants])]


def aligned_table(images: int, out: Path, variants: list[str]) -> list[str]:
    """The ``aligned`` protocol's markdown table."""
    aligned = degraded_training_faces(images, out)
    restorer = Restorer(aligned=True, fidelity=1.0, upscale=1, device="cpu", precision="float32").load()
    side = restorer.network.size
    lpips, mobilefacenet, dlib = load_lpips("alex"), load_mobilefacenet(), dlib_identity()
    lines = [
        f"Aligned faces: {len(list_images(aligned))} training people per preset, scored at {side} px",
        "",
        "| preset | method | PSNR ↑ | SSIM ↑ | LPIPS ↓ | MFN cos ↑ | dlib dist ↓ |",
        "|---|---|---|---|---|---|---|",
    ]
    for preset in PRESETS:
        names = [path.name for path in list_images(out / preset / "lq")]
        truth = np.stack([area(read_image(out / preset / "gt" / name).rgb, side) for name in names])
        methods: dict[str, list[np.ndarray]] = {}
        for name in names:
            image = read_image(out / preset / "lq" / name).rgb
            outputs = {"input": image, "NLM + unsharp": classical_restore(image), **restored(restorer, image, variants)}
            for method, output in outputs.items():
                methods.setdefault(method, []).append(area(output, side))
        for method, faces in methods.items():
            cells = mean_score_cells(np.stack(faces), truth, lpips, dlib, mobilefacenet)
            lines.append(f"| {preset} | {method} | {' | '.join(cells)} |")
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocols", nargs="+", choices=["photos", "aligned"], default=["photos", "aligned"])
    parser.add_argument("--images", type=int, default=30, help="training photos of the photos protocol (default 30)")
    parser.add_argument("--levels", nargs="+", choices=list(LEVELS), default=list(LEVELS))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--faces", type=Path, default=Path("runs/tune_input_cleaning"), help="aligned faces' folder")
    parser.add_argument("--faces-images", type=int, default=110, help="training photos of the aligned protocol")
    parser.add_argument("--out", type=Path, help="write the markdown tables here")
    args = parser.parse_args()
    started = time.perf_counter()
    lines: list[str] = []
    for protocol in args.protocols:  # each table printed and written as soon as it is done
        if protocol == "photos":
            lines += [*photos_table(args.images, args.levels, args.variants), ""]
        else:
            lines += [*aligned_table(args.faces_images, args.faces, args.variants), ""]
        print("\n".join(lines), flush=True)
        if args.out is not None:
            args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{time.perf_counter() - started:.0f} s in all.")


if __name__ == "__main__":
    main()
