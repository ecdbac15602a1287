"""The model card's table: held-out people's photos aligned at 512, presets ``paper`` and ``miner``.

The protocol of issue 17: on held-out people, faces aligned at 512, degraded at 512 with
``paper`` and with ``miner``, restored with ``--aligned`` and scored at the model's size. It
runs, as a user would:

1. the validation people: the photos of ../shared/data/faces_hires (congress, cc0_avatars,
   flickr_pd) of the people the training split holds out (``data.split: identity`` of the
   ``default256`` config; :func:`common.held_out_hires_photos`);
2. their largest face aligned at 512 px onto the FFHQ template
   (:func:`minerrestore.data.datasets.align_largest_face`, as training aligns photos), written
   once to OUT/validation_512/<sub-folder>_<name>.png; photos with no face are skipped;
3. for each preset, ``minerrestore degrade --size 512`` with a fixed seed; the non-learned
   baselines: the degraded input itself, plain resize (the same low-resolution image enlarged
   with bicubic instead of bilinear interpolation) and classical restoration
   (:func:`minerrestore.baselines.classical_restore`: non-local means plus unsharp mask); and
   ``minerrestore restore --aligned --upscale 1 --fidelity 1`` with each model (float32; the
   network sees the 512 px input reduced to its own size, and the pipeline enlarges its output);
4. scoring at ``--score-size`` (the model's size; default 256): the ground truth and every
   method area-resized to S x S into OUT/<preset>/scored_<S>/{gt,<method>}, then
   ``minerrestore evaluate --compare`` (PSNR, SSIM, LPIPS-Alex, NIQE, identity with
   ``--identity-net mobilefacenet``) on those folders; the exact command is printed, so anyone
   reproduces the table from OUT (NIQE needs at least two 96 px blocks: n/a below 192 px);
5. when ``dlib`` is installed (``pip install -e ".[bench]"``: dlib-bin, face-recognition-models;
   not a dependency of minerrestore), an independent identity check: the mean distance of
   dlib's ResNet face descriptors to the ground truth's (dlib calls two faces the same person
   below 0.6; :class:`minerrestore.metrics.identity.DlibIdentity`). The identity column of
   step 4 uses MobileFaceNet, the network of the training's identity loss, which flatters the
   models; dlib's network never took part in training;
6. the HF ratio (:func:`common.hf_ratio`): the energy of the grey image's high-frequency band
   (the image minus its Gaussian blur of sigma 1.5 px) over the ground truth's, averaged over
   the faces: 1.0 is as much fine detail as the truth, below is blurrier, above is noisier or
   oversharpened.

    python benchmarks/model_card.py --score-size 256 --card weights/MODEL_CARD.md \\
        --model scheme_A=a256 --model scheme_D=d256 --model d128=d128

Writes OUT/table.md and OUT/table.json (columns: preset, method, PSNR, SSIM, LPIPS, NIQE,
identity cos, dlib dist, HF ratio), OUT/<preset>/scored_<S>/evaluate.json and
OUT/contact_sheet.png (or .jpg when the PNG would pass 2 MB: the first 4 faces of each
preset; ground truth, degraded input, classical, each model). The command above (159 faces, three
models, dlib installed) took 23 minutes on one CPU thread; aligning the faces, done once, 25 s.
``--limit 6`` gives a quick check.
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
import numpy as np
from common import dlib_identity, held_out_hires_photos, hf_ratio, update_card_section

from minerrestore.baselines import classical_restore
from minerrestore.data.datasets import align_largest_face
from minerrestore.data.degradation import apply_degradation
from minerrestore.data.folders import read_manifest
from minerrestore.data.pairs import DEGRADE_MANIFEST
from minerrestore.io import list_images, read_image, write_image
from minerrestore.metrics.identity import DlibIdentity

PRESETS = ("paper", "miner")
ALIGN_SIZE = 512
SEED = 2026
METRICS = "psnr,ssim,lpips,niqe,identity"
BASELINES = ("degraded_input", "plain_resize", "classical")
SHEET_METHODS = ("degraded_input", "classical")  # then each model
SHEET_FACES = 4
SHEET_MAX_BYTES = 2_000_000
CLI = [sys.executable, "-m", "minerrestore"]
COLUMNS = [  # (table.json key, evaluate.json summary key, header, digits)
    ("psnr", "psnr", "PSNR ↑", 2),
    ("ssim", "ssim", "SSIM ↑", 4),
    ("lpips", "lpips", "LPIPS ↓", 4),
    ("niqe", "niqe", "NIQE ↓", 3),
    ("identity_cos", "identity_cos", "identity cos ↑", 4),
    ("dlib_dist", None, "dlib dist ↓", 4),
    ("hf_ratio", None, "HF ratio (1 = truth)", 3),
]


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


def aligned_folder(photos: list[Path], out: Path) -> Path:
    """OUT/validation_512: the largest face of each photo aligned at 512 px (done once per file).

    Files are named ``<sub-folder>_<name>.png`` (unique across the sub-folders of faces_hires);
    photos with no face are skipped and counted.
    """
    folder = out / f"validation_{ALIGN_SIZE}"
    folder.mkdir(parents=True, exist_ok=True)
    missing = folder / "no_face.txt"  # photos already known to have no face
    known = set(missing.read_text(encoding="utf-8").split("\n")) if missing.exists() else set()
    skipped = []
    wanted = {path: f"{path.parent.name}_{path.stem}.png" for path in photos}
    for path, name in wanted.items():
        if (folder / name).exists():
            continue
        if name in known:
            skipped.append(name)
            continue
        loaded = read_image(path)
        aligned = align_largest_face(loaded.rgb, ALIGN_SIZE)
        if aligned is None:
            skipped.append(name)
            continue
        write_image(folder / name, aligned[0], grey=loaded.is_grey)
    missing.write_text("\n".join(sorted(known | set(skipped))), encoding="utf-8")
    for stale in list_images(folder):  # faces of an earlier run with another --limit
        if stale.name not in wanted.values():
            stale.unlink()
    kept = len(photos) - len(skipped)
    print(f"{len(photos)} held-out photos, {kept} faces aligned at {ALIGN_SIZE} px, {len(skipped)} skipped (no face)")
    if skipped:
        print("  no face:", ", ".join(skipped))
    return folder


def baselines(preset_dir: Path) -> list[Path]:
    """Write methods/{degraded_input,plain_resize,classical} from the degrade manifest."""
    methods = preset_dir / "methods"
    folders = [methods / name for name in BASELINES]
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


def scored_folders(preset_dir: Path, folders: list[Path], size: int) -> tuple[Path, list[Path]]:
    """OUT/<preset>/scored_<S>/{gt,<method>}: the ground truth and each method area-resized to S x S.

    Grey images stay grey. Returns the scored ground-truth folder and the scored method folders.
    """
    scored = preset_dir / f"scored_{size}"
    sources = [preset_dir / "gt", *folders]
    targets = [scored / "gt", *(scored / folder.name for folder in folders)]
    for source, target in zip(sources, targets, strict=True):
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for path in list_images(source):
            loaded = read_image(path)
            small = cv2.resize(loaded.rgb, (size, size), interpolation=cv2.INTER_AREA)
            write_image(target / path.name, small, grey=loaded.is_grey)
    return targets[0], targets[1:]


def dlib_distances(dlib: DlibIdentity, gt_dir: Path, folders: list[Path]) -> dict[str, float]:
    """Mean dlib descriptor distance of each folder's faces (same names as ``gt_dir``) to the ground truth."""
    totals = dict.fromkeys((folder.name for folder in folders), 0.0)
    names = [path.name for path in list_images(gt_dir)]
    for name in names:
        reference = dlib.reference(dlib.prepare(read_image(gt_dir / name).rgb))
        for folder in folders:
            totals[folder.name] += dlib.distance_to(dlib.prepare(read_image(folder / name).rgb), reference)
    return {method: total / len(names) for method, total in totals.items()}


def hf_ratios(gt_dir: Path, folders: list[Path]) -> dict[str, float]:
    """Mean :func:`common.hf_ratio` of each folder's images to the ground truth's (same names)."""
    names = [path.name for path in list_images(gt_dir)]
    truths = [read_image(gt_dir / name).rgb for name in names]
    ratios = {}
    for folder in folders:
        outputs = [read_image(folder / name).rgb for name in names]
        ratios[folder.name] = float(np.mean([hf_ratio(o, t) for o, t in zip(outputs, truths, strict=True)]))
    return ratios


def table_rows(summary: dict, preset: str, extra: dict[str, dict[str, float] | None]) -> list[dict]:
    """One row (preset, method and the numbers of :data:`COLUMNS`, None when missing) per evaluated method.

    ``extra`` maps a column key without an ``evaluate`` summary key (dlib, HF ratio) to its
    per-method values, or None when the column was not computed.
    """
    rows = []
    for method in summary["methods"]:
        row: dict = {"preset": preset, "method": method["method"]}
        for key, summary_key, _, _ in COLUMNS:
            if summary_key is not None:
                row[key] = method["summary"][summary_key]["mean"]
            else:
                values = extra.get(key)
                row[key] = None if values is None else values[method["method"]]
        rows.append(row)
    return rows


def markdown_table(rows: list[dict], size: int) -> list[str]:
    """The markdown table of ``rows`` (scored at ``size`` px)."""
    lines = [
        f"Scored at {size} x {size} px (faces aligned, degraded and restored at {ALIGN_SIZE} px).",
        "",
        "| preset | method | " + " | ".join(header for _, _, header, _ in COLUMNS) + " |",
        "|---|---|" + "---|" * len(COLUMNS),
    ]
    for row in rows:
        cells = ["n/a" if row[key] is None else f"{row[key]:.{digits}f}" for key, _, _, digits in COLUMNS]
        lines.append(f"| {row['preset']} | {row['method']} | " + " | ".join(cells) + " |")
    return lines


def labelled(tile: np.ndarray, label: str, band: int = 18) -> np.ndarray:
    """``tile`` (RGB) under a white band that holds ``label`` in black."""
    header = np.full((band, tile.shape[1], 3), 255, np.uint8)
    scale = 0.4 if tile.shape[1] >= 160 else 0.3
    cv2.putText(header, label, (4, band - 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([header, tile])


def contact_sheet(out: Path, scored: dict[str, tuple[Path, list[str]]], size: int) -> Path:
    """OUT/contact_sheet.png (.jpg when the PNG would pass 2 MB): per preset, one row per face of the first 4.

    Columns: ground truth, then ``scored[preset][1]`` (folder names under the scored folder);
    every column of a preset's first row is labelled with ``preset: method``.
    """
    blocks = []
    for preset, (scored_dir, methods) in scored.items():
        columns = ["gt", *methods]
        names = [path.name for path in list_images(scored_dir / "gt")][:SHEET_FACES]
        for index, name in enumerate(names):
            tiles = [read_image(scored_dir / column / name).rgb for column in columns]
            if index == 0:
                tiles = [labelled(tile, f"{preset}: {column}") for tile, column in zip(tiles, columns, strict=True)]
            blocks.append(np.hstack(tiles))
    width = max(block.shape[1] for block in blocks)
    sheet = np.vstack([np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0)), constant_values=255) for b in blocks])
    bgr = cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)
    for stale in (out / "contact_sheet.png", out / "contact_sheet.jpg"):
        stale.unlink(missing_ok=True)
    ok, png = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if ok and len(png) <= SHEET_MAX_BYTES:
        path = out / "contact_sheet.png"
        path.write_bytes(png.tobytes())
    else:
        path = out / "contact_sheet.jpg"
        cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path


def main() -> None:
    """Align, degrade, restore, score; write OUT/table.md, OUT/table.json and the contact sheet."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/model_card"))
    parser.add_argument(
        "--model", action="append", default=[], metavar="NAME=MODEL", help="a row: NAME=default|RUN_DIR|FILE"
    )
    parser.add_argument("--score-size", type=int, default=256, help="side the faces are scored at (the model's size)")
    parser.add_argument(
        "--limit", type=int, default=None, metavar="N", help="only the first N held-out photos (sorted)"
    )
    parser.add_argument("--card", type=Path, help="also write the table into this card (its 'validation' markers)")
    args = parser.parse_args()
    models = [item.split("=", 1) for item in args.model or ["scheme_D=default"]]
    size = args.score_size
    faces = aligned_folder(held_out_hires_photos(args.limit), args.out)
    names = sorted(path.name for path in list_images(faces))
    independent = dlib_identity()
    rows: list[dict] = []
    sheet: dict[str, tuple[Path, list[str]]] = {}
    for preset in PRESETS:
        preset_dir = args.out / preset
        manifest = preset_dir / DEGRADE_MANIFEST
        if manifest.exists() and sorted(row["source"] for row in read_manifest(manifest)) != names:
            shutil.rmtree(preset_dir)  # degraded from another set of faces (another --limit)
        if not manifest.exists():
            run([*CLI, "degrade", str(faces), "--out", str(preset_dir), "--preset", preset,
                 "--size", str(ALIGN_SIZE), "--seed", str(SEED), "--quiet"])  # fmt: skip
        folders = baselines(preset_dir)
        folders += [restore_with(model, name, preset_dir) for name, model in models]
        gt_dir, scored = scored_folders(preset_dir, folders, size)
        report = gt_dir.parent / "evaluate.json"
        first, *others = scored
        compare = [argument for folder in others for argument in ("--compare", str(folder))]
        run([*CLI, "evaluate", str(first), "--gt", str(gt_dir), *compare, "--metrics", METRICS,
             "--identity-net", "mobilefacenet", "--json", str(report)])  # fmt: skip
        extra = {
            "dlib_dist": None if independent is None else dlib_distances(independent, gt_dir, scored),
            "hf_ratio": hf_ratios(gt_dir, scored),
        }
        rows += table_rows(json.loads(report.read_text(encoding="utf-8")), preset, extra)
        sheet[preset] = (gt_dir.parent, [*SHEET_METHODS, *(name for name, _ in models)])
    table = markdown_table(rows, size)
    (args.out / "table.md").write_text("\n".join(table) + "\n", encoding="utf-8")
    document = {"score_size": size, "align_size": ALIGN_SIZE, "seed": SEED, "rows": rows}
    (args.out / "table.json").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print("\n".join(table))
    print(f"contact sheet: {contact_sheet(args.out, sheet, size)}")
    if args.card is not None:
        update_card_section(args.card, "validation", table)


if __name__ == "__main__":
    main()
