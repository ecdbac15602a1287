"""Restoration on CPU: faces per second against the official GFPGANer, whole-photo time, peak memory.

1. Aligned 512 px faces (``--aligned`` input): our :class:`~minerrestore.restore.Restorer`, one
   file at a time as ``minerrestore restore --aligned`` runs it and batched through
   :meth:`~minerrestore.restore.Restorer.restore_crops`, against ``gfpgan.GFPGANer.enhance(img,
   has_aligned=True)`` (dev dependency). Both load the same file: random scheme-A weights with
   channel multiplier 2 (the v1.3/v1.4 architecture) saved in the official layout
   (``{"params_ema": ...}``), so the mean absolute difference of the float32 outputs must be ~0.
   Timed alternately in one process, so load from other jobs on the machine hits both alike.
   GFPGANer's constructor always builds facexlib's RetinaFace and ParseNet, downloading their
   weights when absent (it cannot work offline), although ``has_aligned=True`` never uses
   them: the benchmark replaces those two builders by stubs while constructing it; ``enhance``
   itself runs unchanged (its pre-processing, network and post-processing).
2. The Solvay photo (29 small grey faces), detection to paste back, upscale 2, with the
   default model's architecture (scheme D, 128 px, random weights) and optionally the 512 px
   scheme-A network.
3. Peak memory of ``restore_paths`` on a 6000x4000 JPEG with many faces, in a subprocess:
   the process's peak resident set (``VmHWM`` of ``/proc/self/status``: ``ru_maxrss`` would
   include the parent's size, which Linux carries over fork and exec) and tracemalloc's peak
   (NumPy buffers).

    python benchmarks/bench_restore.py                      # small defaults (a few minutes on 1 thread)
    python benchmarks/bench_restore.py --faces 4 --repeats 3 --solvay-models d128 a512

The machine may be shared: compare ratios measured in the same run, not absolute times.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

import minerrestore.compat  # noqa: F401  (before gfpgan / facexlib)
from minerrestore.archs.checkpoints import save_restorer
from minerrestore.archs.precision import bfloat16_native, resolve_precision
from minerrestore.archs.restorer import create_restorer, to_official_state_dict
from minerrestore.face import align_faces, detect_faces
from minerrestore.io import read_image, write_image
from minerrestore.restore import Restorer
from minerrestore.restore_files import restore_paths

SHARED = Path(__file__).resolve().parents[2] / "shared"
SOLVAY = SHARED / "data" / "examples" / "Solvay_conference_1927.png"
FACES = SHARED / "data" / "faces"
CPU = torch.device("cpu")


# ---------------------------------------------------------------------------- models and inputs


def save_official_random(path: Path, seed: int = 0) -> Path:
    """Random GFPGANv1Clean weights (512 px, channel multiplier 2) in the official .pth layout."""
    torch.manual_seed(seed)
    net = create_restorer("gfpgan-clean")
    torch.save({"params_ema": to_official_state_dict(net.state_dict())}, path)
    return path


def save_default_architecture(path: Path, seed: int = 0) -> Path:
    """Random weights with the default model's architecture (scheme D, 128 px)."""
    torch.manual_seed(seed)
    return save_restorer(path, create_restorer("D", out_size=128))


def aligned_faces(count: int, size: int = 512) -> list[np.ndarray]:
    """``count`` shared portraits aligned onto the FFHQ template, (size, size, 3) uint8 RGB."""
    crops: list[np.ndarray] = []
    for path in sorted(FACES.glob("*.jpg")):
        rgb = read_image(path).rgb
        faces = detect_faces(rgb)
        if faces:
            crops.append(align_faces(rgb, faces[:1], size)[0].crop)
        if len(crops) == count:
            return crops
    raise SystemExit(f"found only {len(crops)} faces in {FACES}")


@contextlib.contextmanager
def facexlib_models_stubbed() -> Iterator[list[str]]:
    """Replace facexlib's detector and parser builders (which download weights) by stubs."""
    import facexlib.utils.face_restoration_helper as helper

    asked: list[str] = []
    saved = helper.init_detection_model, helper.init_parsing_model

    def stub(model_name: str, *args: object, **kwargs: object) -> None:
        asked.append(model_name)

    helper.init_detection_model = helper.init_parsing_model = stub
    try:
        yield asked
    finally:
        helper.init_detection_model, helper.init_parsing_model = saved


def build_gfpganer(model_path: Path) -> object:
    """The official GFPGANer on the CPU, loading ``model_path``, without downloading anything."""
    from gfpgan import GFPGANer

    with facexlib_models_stubbed() as asked:
        restorer = GFPGANer(str(model_path), upscale=1, arch="clean", channel_multiplier=2, device=CPU)
    print(f"GFPGANer: stubbed facexlib models it asked for (it would download them): {', '.join(asked)}")
    return restorer


# ---------------------------------------------------------------------------- 1. aligned faces


def timed(function: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def bench_aligned(model_path: Path, count: int, repeats: int, batch_size: int) -> dict[str, object]:
    """Seconds per aligned 512 face: official GFPGANer vs ours (per file, batched) in float32 and auto."""
    crops = aligned_faces(count)
    official = build_gfpganer(model_path)
    auto = str(resolve_precision("auto", CPU)).removeprefix("torch.")
    ours = {
        precision: Restorer(
            model_path,
            device="cpu",
            aligned=True,
            upscale=1,
            fidelity=1.0,  # the network's face, as GFPGANer returns it
            precision=precision,
            batch_size=batch_size,
        ).load()
        for precision in ("float32", "auto")
    }
    runs: dict[str, Callable[[], list[np.ndarray]]] = {
        "official GFPGANer (float32)": lambda: [
            official.enhance(crop[..., ::-1].copy(), has_aligned=True, paste_back=False)[1][0][..., ::-1]
            for crop in crops
        ],
    }
    for precision, restorer in ours.items():
        label = f"{precision} = {auto}" if precision == "auto" else precision
        runs[f"ours per file ({label})"] = lambda r=restorer: [r.restore(crop).faces[0].restored for crop in crops]
        runs[f"ours batched x{batch_size} ({label})"] = lambda r=restorer: r.restore_crops(crops)
    outputs = {name: run() for name, run in runs.items()}  # warm-up, and outputs to compare
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name].append(timed(run)[0])
    reference = np.stack(outputs["official GFPGANer (float32)"]).astype(np.float32)
    base = statistics.median(times["official GFPGANer (float32)"]) / count
    rows = []
    for name in runs:
        per_face = statistics.median(times[name]) / count
        difference = float(np.abs(np.stack(outputs[name]).astype(np.float32) - reference).mean())
        rows.append(
            {
                "pipeline": name,
                "s_per_face": per_face,
                "faces_per_s": 1 / per_face,
                "speedup": base / per_face,
                "mean_abs_diff_255": difference,
            }
        )
    print(f"\n1. aligned 512 px faces: {count} faces, median of {repeats} run(s) after one warm-up")
    print(f"{'pipeline':<36} {'s/face':>8} {'faces/s':>8} {'vs official':>11} {'|out - official| (0-255)':>25}")
    for row in rows:
        print(
            f"{row['pipeline']:<36} {row['s_per_face']:>8.2f} {row['faces_per_s']:>8.3f} "
            f"{row['speedup']:>10.2f}x {row['mean_abs_diff_255']:>25.3f}"
        )
    return {"faces": count, "repeats": repeats, "rows": rows}


# ---------------------------------------------------------------------------- 2. Solvay


def bench_solvay(models: dict[str, Path]) -> dict[str, object]:
    """Whole-photo seconds for the Solvay photo (upscale 2) per model, after a warm-up on a portrait."""
    image = read_image(SOLVAY)
    warm_up = read_image(sorted(FACES.glob("*.jpg"))[0])
    results = {}
    print("\n2. Solvay_conference_1927.png (1328x568, 29 faces), detect to paste back, upscale 2, precision auto")
    for name, path in models.items():
        restorer = Restorer(path, device="cpu").load()
        restorer.restore(warm_up)
        seconds, result = timed(lambda r=restorer: r.restore(image))
        timings = {key: round(value, 2) for key, value in result.timings.items()}
        results[name] = {"seconds": seconds, "faces": len(result.faces), "timings": timings}
        print(
            f"{name:<6} {seconds:7.1f} s  {len(result.faces)} faces  "
            f"{len(result.faces) / seconds:.2f} faces/s  stages: {timings}"
        )
    return results


# ---------------------------------------------------------------------------- 3. memory


def mosaic(width: int = 6000, height: int = 4000, scale: float = 3.0) -> tuple[np.ndarray, int]:
    """A ``width`` x ``height`` photo tiled with shared portraits enlarged by ``scale``; (RGB, faces)."""
    canvas = np.full((height, width, 3), 110, np.uint8)
    portraits = sorted(FACES.glob("*.jpg"))
    tile_w, tile_h = round(225 * scale), round(275 * scale)
    count = 0
    for top in range(0, height - tile_h + 1, tile_h):
        for left in range(0, width - tile_w + 1, tile_w):
            face = read_image(portraits[count % len(portraits)]).rgb
            canvas[top : top + tile_h, left : left + tile_w] = cv2.resize(
                face, (tile_w, tile_h), interpolation=cv2.INTER_LANCZOS4
            )
            count += 1
    return canvas, count


def peak_rss_mb() -> float:
    """Peak resident set of this process in MB (Linux ``VmHWM``)."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def memory_child(image: Path, model: Path, out: Path) -> None:
    """Run in the subprocess: restore one big photo to ``out``, print peak memory as JSON."""
    restorer = Restorer(model, device="cpu").load()
    baseline = peak_rss_mb()
    tracemalloc.start()
    seconds, report = timed(lambda: restore_paths(image, out, restorer=restorer, quiet=True))
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    item = report.results[0]
    print(
        json.dumps(
            {
                "status": item.status,
                "faces": len(item.info.get("faces", [])),
                "seconds": seconds,
                "peak_rss_mb": peak_rss_mb(),
                "peak_rss_after_model_load_mb": baseline,
                "tracemalloc_peak_mb": traced_peak / 2**20,
                "timings": item.info.get("timings"),
            }
        )
    )


def bench_memory(model: Path, folder: Path) -> dict[str, object]:
    """Peak memory of restoring a 6000x4000 photo (upscale 2), measured in a fresh process."""
    rgb, faces = mosaic()
    image = write_image(folder / "big_6000x4000.jpg", rgb, quality=92)
    del rgb
    command = [sys.executable, __file__, "--memory-child", str(image), str(model), str(folder / "out")]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    out_mb = 12000 * 8000 * 3 / 2**20
    print(
        f"\n3. 6000x4000 JPEG with {faces} faces, upscale 2 (output 12000x8000, {out_mb:.0f} MB of pixels), "
        f"default architecture, subprocess"
    )
    print(
        f"status {result['status']}, {result['faces']} faces restored in {result['seconds']:.1f} s; "
        f"peak RSS {result['peak_rss_mb']:.0f} MB (model loaded: {result['peak_rss_after_model_load_mb']:.0f} MB)"
        f"; tracemalloc peak {result['tracemalloc_peak_mb']:.0f} MB; stages {result['timings']}"
    )
    return result


# ---------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=2, help="aligned faces in part 1")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per pipeline in part 1 (after a warm-up)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--solvay-models", nargs="*", default=["d128"], choices=["d128", "a512"])
    parser.add_argument("--skip", nargs="*", default=[], choices=["aligned", "solvay", "memory"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: stable on a shared machine)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--memory-child", nargs=3, metavar=("IMAGE", "MODEL", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(*(Path(p) for p in args.memory_child))
        return
    if not FACES.is_dir() or not SOLVAY.is_file():
        raise SystemExit(f"needs the shared data in {SHARED}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), bfloat16 native: {bfloat16_native(CPU)}")
    results: dict[str, object] = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    with tempfile.TemporaryDirectory(prefix="bench_restore_") as temp:
        folder = Path(temp)
        a512 = save_official_random(folder / "random_gfpgan_clean.pth")
        d128 = save_default_architecture(folder / "random_d128.safetensors")
        if "aligned" not in args.skip:
            results["aligned"] = bench_aligned(a512, args.faces, args.repeats, args.batch_size)
        if "solvay" not in args.skip:
            models = {"d128": d128, "a512": a512}
            results["solvay"] = bench_solvay({name: models[name] for name in args.solvay_models})
        if "memory" not in args.skip:
            results["memory"] = bench_memory(d128, folder)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
