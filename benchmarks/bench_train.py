"""Benchmark: training iterations per second on the CPU for the ``tiny`` (64 px) and ``default128`` configs.

Each config trains for a few iterations through :func:`minerrestore.train.train` (every loss of
the paper on: L1, pyramid, perceptual + style, GAN with lazy R1, three facial-component
discriminators with Gram style, identity) on faces from ../shared/data/faces, in a
temporary run folder. Reported per config:

- setup: seconds from the call to the end of the first iteration (config, alignment of the
  faces, networks, validation pairs, one warm-up iteration);
- it/s: steady-state iterations per second (wall time between the first and the last
  logged iteration, so warm-up and the final validation are excluded);
- CPU s/it: process CPU time per iteration (which, unlike it/s, hardly depends on what else
  the machine runs); the ratio CPU/wall shows how many cores were busy.

Run from the repository root::

    python benchmarks/bench_train.py --iterations 12 --threads 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

SHARED_FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"
CONFIGS = ("tiny", "default128")


def bench(config: str, iterations: int, faces: Path, work: Path) -> dict[str, float]:
    """Train ``config`` for ``iterations`` in ``work``; return timing figures."""
    from minerrestore.train import train

    run_dir = work / config
    settings = [
        f"data.train_dir={faces}",
        f"train.out_dir={run_dir}",
        f"train.iterations={iterations}",
        f"train.checkpoint_every={iterations}",
        "train.device=cpu",
        "data.num_workers=0",
        "data.max_images=64",
        "log.every=1",
        "log.val_every=0",
        "log.val_images=4",
        "log.tensorboard=false",
    ]
    called = time.time()
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    train(config, overrides=settings, quiet=True)
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    steps = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    steps = [row for row in steps if row["event"] == "train"]
    first, last = steps[0], steps[-1]
    span = last["time"] - first["time"]
    return {
        "setup_s": first["time"] - called,
        "it_per_s": (last["iteration"] - first["iteration"]) / span if span > 0 else float("nan"),
        "cpu_s_per_it": cpu / iterations,
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=12, help="iterations per config (first one is warm-up)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), help="shipped config names")
    args = parser.parse_args()
    if not SHARED_FACES.is_dir():
        raise SystemExit(f"faces not found: {SHARED_FACES}")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.iterations} iterations per config")
    with tempfile.TemporaryDirectory() as work:
        from minerrestore.train.config import load_config

        for config in args.configs:
            loaded = load_config(config, [f"data.train_dir={SHARED_FACES}"])
            figures = bench(config, args.iterations, SHARED_FACES, Path(work))
            print(
                f"{config:>11}: {loaded.model.out_size} px, batch {loaded.data.batch_size}, "
                f"scheme {loaded.model.scheme}"
                f" | {figures['it_per_s']:.2f} it/s ({figures['it_per_s'] * loaded.data.batch_size:.1f} faces/s)"
                f" | CPU {figures['cpu_s_per_it']:.2f} s/it | setup {figures['setup_s']:.1f} s"
                f" | total {figures['wall_s']:.1f} s"
            )


if __name__ == "__main__":
    main()
