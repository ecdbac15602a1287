"""``minerrestore train`` as a process: two-process DDP under torchrun (gloo, CPU) and Ctrl-C checkpoints."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from minerrestore.models.export import load_checkpoint
from minerrestore.train.config import load_config
from minerrestore.train.log import read_log
from minerrestore.train.networks import build_generator
from minerrestore.train.run import RunLayout

COMMON = ["log.every=1", "log.val_every=0", "log.val_images=2", "log.grid_images=2", "log.tensorboard=false"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MINERRESTORE_DEBUG": "1"}


def test_two_process_gloo_run_finishes_and_its_checkpoint_loads(shared_dir: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        "-m",
        "minerrestore",
        "train",
        "--config",
        "tiny",
        "--quiet",
        f"data.train_dir={shared_dir / 'data' / 'faces'}",
        f"train.out_dir={out_dir}",
        "train.iterations=4",
        "train.checkpoint_every=2",
        *COMMON,
    ]
    done = subprocess.run(command, env=_environment(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    layout = RunLayout(out_dir)
    assert [i for i, _ in layout.list_checkpoints()] == [2, 4]
    state = load_checkpoint(layout.checkpoint(4))
    assert state["iteration"] == 4 and state["world_size"] == 2 and len(state["rng"]) == 2
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])  # each rank draws its own noise
    generator, _ = build_generator(load_config(layout.config))
    generator.load_state_dict(state["modules"]["generator_ema"])
    start = next(r for r in read_log(layout.log) if r["event"] == "start")
    assert start["world_size"] == 2
    assert len([r for r in read_log(layout.log) if r["event"] == "train"]) == 4  # rank 0 logs alone


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_finishes_the_iteration_checkpoints_and_resumes(shared_dir: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "interrupted"
    settings = [f"data.train_dir={shared_dir / 'data' / 'faces'}", f"train.out_dir={out_dir}", *COMMON]
    command = [sys.executable, "-m", "minerrestore", "train", "--config", "tiny", "--quiet", *settings]
    process = subprocess.Popen(
        [*command, "train.iterations=1000", "train.checkpoint_every=1000"],
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = out_dir / "log.jsonl"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        if log.is_file() and '"event": "train"' in log.read_text():
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    stopped = next(r for r in rows if r["event"] == "interrupted")["iteration"]
    assert 1 <= stopped < 1000
    assert [i for i, _ in RunLayout(out_dir).list_checkpoints()] == [stopped]
    resumed = subprocess.run(
        [*command, "--resume", f"train.iterations={stopped + 1}"],
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [r["iteration"] for r in read_log(log) if r["event"] == "train"][-1] == stopped + 1
    assert (out_dir / "restorer_ema.safetensors").is_file()
