"""``minerrestore train``: the tiny config trains, checkpoints and resumes exactly; inputs are checked first."""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from minerrestore.cli import main
from minerrestore.data.datasets import FaceItem, FacePairs, IterationSampler, plan_data
from minerrestore.data.degradation import DegradationSettings, apply_degradation, prepare_gt, sample_params
from minerrestore.data.folders import image_seed
from minerrestore.errors import ConfigError, UsageError, WeightsError
from minerrestore.face import template_for
from minerrestore.io import read_image, write_image
from minerrestore.models.export import export_checkpoint, load_checkpoint
from minerrestore.train import train
from minerrestore.train.config import load_config
from minerrestore.train.log import read_log
from minerrestore.train.run import RunLayout

LOSSES_G = ("l1", "pyramid", "perceptual", "style", "gan", "component_gan", "component_style", "identity", "total")
LOSSES_D = ("gan", "components")


def _settings(faces: Path, out_dir: Path, *extra: str) -> list[str]:
    return [
        f"data.train_dir={faces}",
        f"train.out_dir={out_dir}",
        "train.checkpoint_every=10",
        "log.every=1",
        "log.val_every=10",
        "log.val_images=2",
        "log.grid_images=2",
        "log.tensorboard=false",
        *extra,
    ]


def _session(run_dir: Path) -> dict[int, dict]:
    """Training records written by the last session (after its ``start`` record)."""
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    start = max(i for i, row in enumerate(rows) if row["event"] == "start")
    return {row["iteration"]: row for row in rows[start:] if row["event"] == "train"}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: the tiny networks gain little from more, and a resumed run must use the
    same thread count as the run it reproduces (reductions are summed in another order otherwise)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def faces(shared_dir: Path) -> Path:
    return shared_dir / "data" / "faces"


@pytest.fixture(scope="module")
def tiny_run(faces: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """The tiny config trained for 20 iterations on 16 faces (checkpoints at 10 and 20)."""
    out_dir = tmp_path_factory.mktemp("train") / "tiny"
    start = time.perf_counter()
    result = train("tiny", overrides=_settings(faces, out_dir, "train.iterations=20"), quiet=True)
    seconds = time.perf_counter() - start
    assert result.iteration == 20 and not result.interrupted
    return out_dir, seconds


def test_tiny_config_trains_20_iterations_on_cpu(tiny_run: tuple[Path, float]) -> None:
    run_dir, _ = tiny_run  # its speed is measured by benchmarks/bench_train.py, not asserted here
    config = load_config(run_dir / "config.yml")
    assert config.model.out_size == 64 and config.data.max_images == 16 and config.train.out_dir == str(run_dir)
    records = _session(run_dir)
    assert sorted(records) == list(range(1, 21))
    for iteration, row in records.items():
        for name in (*(f"g_{n}" for n in LOSSES_G), *(f"d_{n}" for n in LOSSES_D)):
            assert math.isfinite(row[name]), f"{name} at iteration {iteration}: {row[name]}"
        assert ("d_r1" in row) == (iteration % 16 == 0)  # lazy R1 every 16 iterations
    start = next(r for r in read_log(run_dir / "log.jsonl") if r["event"] == "start")
    assert start["train_faces"] == 16 and start["perceptual"] == "vgg16_lpips" and start["identity"] == "mobilefacenet"
    val = [r for r in read_log(run_dir / "log.jsonl") if r["event"] == "val"]
    assert [r["iteration"] for r in val] == [10, 20] and all(0 < r["ssim"] <= 1 for r in val)
    assert (run_dir / "val" / "iter_00000020.png").is_file() and (run_dir / "loss_curves.png").is_file()


def test_checkpoint_holds_the_whole_state_and_the_ema_model_restores(tiny_run: tuple[Path, float]) -> None:
    from minerrestore.models.catalogue import load_model

    run_dir, _ = tiny_run
    layout = RunLayout(run_dir)
    assert [i for i, _ in layout.list_checkpoints()] == [10, 20]
    state = load_checkpoint(layout.checkpoint(20))
    assert state["iteration"] == 20 and state["world_size"] == 1
    assert set(state["modules"]) == {"generator", "generator_ema", "discriminator", "components"}
    assert set(state["optimizers"]) == set(state["schedulers"]) == {"g", "d", "components"}
    assert set(state["rng"][0]) >= {"torch", "numpy", "python"}
    model = load_model(run_dir / "restorer_ema.safetensors")
    ema = state["modules"]["generator_ema"]
    for key, value in model.net.state_dict().items():
        torch.testing.assert_close(value, ema[key])
    with torch.no_grad():
        out = model.net(torch.zeros(1, 3, 64, 64)).image
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()


def test_export_writes_the_ema_of_a_checkpoint_mid_run_and_never_overwrites(
    tiny_run: tuple[Path, float], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from minerrestore.models.catalogue import load_model

    run_dir, _ = tiny_run
    ema = load_checkpoint(RunLayout(run_dir).checkpoint(10))["modules"]["generator_ema"]
    exported = export_checkpoint(RunLayout(run_dir).checkpoint(10), tmp_path / "iter10.safetensors")
    for key, value in load_model(exported).net.state_dict().items():
        torch.testing.assert_close(value, ema[key])
    assert main(["export", str(run_dir), str(tmp_path / "half.safetensors"), "--half"]) == 0
    assert "iteration 20, the run's last" in capsys.readouterr().out
    assert main(["export", str(RunLayout(run_dir).checkpoint(10)), str(tmp_path / "mid.safetensors")]) == 0
    assert "iteration 10, a run of 20 iterations not at its end yet" in capsys.readouterr().out
    latest = load_checkpoint(RunLayout(run_dir).checkpoint(20))["modules"]["generator_ema"]
    half = load_model(tmp_path / "half.safetensors").net.state_dict()
    for key, value in half.items():  # loaded back as float32, rounded to float16
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, latest[key].half().float())
    assert (tmp_path / "half.safetensors").stat().st_size < 0.6 * exported.stat().st_size
    before = exported.read_bytes()
    assert main(["export", str(run_dir), str(exported)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err and exported.read_bytes() == before
    assert main(["export", str(tmp_path), str(tmp_path / "none.safetensors")]) == 2
    zeroed = tmp_path / "zeroed.safetensors"
    assert main(["export", str(run_dir), str(zeroed), "--zero-constant-input"]) == 0
    model = load_model(zeroed)
    weights = model.net.state_dict()
    assert weights["stylegan_decoder.constant_input.weight"].abs().sum() == 0
    assert latest["stylegan_decoder.constant_input.weight"].abs().sum() > 0
    torch.testing.assert_close(weights["removal.conv_body_first.weight"], latest["removal.conv_body_first.weight"])
    from safetensors import safe_open

    with safe_open(str(zeroed), "pt") as handle:
        assert json.loads(handle.metadata()["config"])["model"]["zero_constant_input"] is True
    capsys.readouterr()
    assert main(["export", str(tmp_path / "missing.pt"), str(tmp_path / "none.safetensors")]) == 2
    assert "no such training checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "none.safetensors").exists()


def test_resume_from_iteration_10_reproduces_iterations_11_to_20(tiny_run: tuple[Path, float], tmp_path: Path) -> None:
    run_dir, _ = tiny_run
    copy = tmp_path / "resumed"
    shutil.copytree(run_dir, copy)
    RunLayout(copy).checkpoint(20).unlink()  # as if the run had been killed after iteration 10
    faces = Path(load_config(run_dir / "config.yml").data.train_dir)
    result = train("tiny", resume=True, overrides=_settings(faces, copy, "train.iterations=20"), quiet=True)
    assert result.iteration == 20
    uninterrupted, resumed = _session(run_dir), _session(copy)
    assert sorted(resumed) == list(range(11, 21))
    for iteration in range(11, 21):
        for name, value in uninterrupted[iteration].items():
            if name.startswith(("g_", "d_")):
                assert resumed[iteration][name] == pytest.approx(value, abs=1e-5), (iteration, name)


def test_resume_says_that_optimiser_settings_stay_those_of_the_checkpoint(tiny_run: tuple[Path, float]) -> None:
    from minerrestore.train.run import _open_run

    run_dir, _ = tiny_run
    config = load_config(run_dir / "config.yml")
    _, _, notes = _open_run(config, True, ["optim.lr_g=1e-5", "losses.l1=3"])
    assert any("optim.lr_g changed" in note and "model.init" in note for note in notes)
    assert not any("losses.l1 changed" in note for note in notes)  # loss weights do apply on resume
    _, _, notes = _open_run(config, True, ["losses.l1=3"])
    assert not any("changed, but" in note for note in notes)


def test_a_run_folder_is_never_overwritten(tiny_run: tuple[Path, float]) -> None:
    run_dir, _ = tiny_run
    before = (run_dir / "config.yml").read_bytes()
    faces = Path(load_config(run_dir / "config.yml").data.train_dir)
    with pytest.raises(UsageError, match="refusing to overwrite"):
        train("tiny", overrides=_settings(faces, run_dir), quiet=True)
    assert (run_dir / "config.yml").read_bytes() == before


def test_a_new_run_may_start_in_a_folder_holding_only_an_alignment_cache(
    faces: Path, tiny_run: tuple[Path, float], tmp_path: Path
) -> None:
    run_dir, _ = tiny_run
    out_dir = tmp_path / "run"
    shutil.copytree(run_dir / "aligned", out_dir / "aligned")
    cached = {path.name: path.stat().st_mtime_ns for path in (out_dir / "aligned").rglob("*") if path.is_file()}
    train("tiny", overrides=_settings(faces, out_dir, "train.iterations=1"), quiet=True)
    assert (out_dir / "config.yml").is_file()
    assert {path.name: path.stat().st_mtime_ns for path in (out_dir / "aligned").rglob("*") if path.is_file()} == cached


def test_missing_inputs_fail_before_a_run_folder_is_made(
    faces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "run"
    with pytest.raises(UsageError, match=r"data\.train_dir: .*not a folder"):
        train("tiny", overrides=_settings(tmp_path / "no_faces", out_dir), quiet=True)
    with pytest.raises(WeightsError, match="StyleGAN2_512_Cmul1"):
        train("tiny", overrides=_settings(faces, out_dir, "model.prior=stylegan2.ffhq512_cmul1"), quiet=True)
    with pytest.raises(UsageError, match=r"missing\.pth"):
        train("tiny", overrides=_settings(faces, out_dir, f"model.init={tmp_path / 'missing.pth'}"), quiet=True)
    with pytest.raises(UsageError, match=r"^resume: .* holds no run \(no config\.yml\) \(drop resume to start"):
        train("tiny", resume=True, overrides=_settings(faces, out_dir), quiet=True)
    assert not out_dir.exists()
    capsys.readouterr()
    assert main(["train", "--config", "tiny", "--resume", *_settings(faces, out_dir)]) == 2
    err = capsys.readouterr().err
    assert f"error: --resume: {out_dir} holds no run (no config.yml)\nhint: drop --resume to start a new run\n" in err
    code = main(["train", "--config", "tiny", f"data.train_dir={tmp_path / 'none'}", f"train.out_dir={out_dir}"])
    assert code == 2 and not out_dir.exists()


def test_images_without_a_face_are_skipped_and_reported(faces: Path, tmp_path: Path) -> None:
    folder = tmp_path / "faces"
    folder.mkdir()
    for source in sorted(faces.iterdir())[:3]:
        shutil.copy(source, folder / source.name)
    write_image(folder / "B_blank.png", np.full((80, 80, 3), 128, np.uint8))
    config = load_config("tiny", [f"data.train_dir={folder}", "data.val_fraction=0"])
    layout = RunLayout(tmp_path / "run")
    plan = plan_data(config, layout, quiet=True)
    assert len(plan.train) == 3 and plan.val == ()
    assert len(plan.skipped) == 1 and plan.skipped[0].startswith("B_blank.png") and "no face" in plan.skipped[0]
    for item in plan.train:
        assert item.gt.parent == layout.aligned / "train" and item.gt.suffix == ".png"
        np.testing.assert_allclose(np.asarray(item.landmarks), template_for(64), atol=3.0)  # aligned crop
    assert plan_data(config, layout, quiet=True) == plan  # cached: aligned once per run folder


def test_paired_folders_from_degrade(faces: Path, tmp_path: Path) -> None:
    from minerrestore.data.pairs import degrade_folder

    source = tmp_path / "hq"
    source.mkdir()
    for path in sorted(faces.iterdir())[:4]:
        shutil.copy(path, source / path.name)
    degrade_folder(source, tmp_path / "pairs", DegradationSettings(size=64), workers=1, quiet=True)
    config = load_config("tiny", [f"data.paired_dir={tmp_path / 'pairs'}", "data.val_fraction=0.25"])
    plan = plan_data(config, RunLayout(tmp_path / "run"), quiet=True)
    assert [Path(item.name).stem for item in plan.val] == [sorted(p.stem for p in source.iterdir())[-1]]
    assert len(plan.train) == 3 and all(item.lq is not None and item.lq.is_file() for item in plan.train)
    lq, gt, _ = FacePairs(plan.train, 64, ["paper"], 0, False, 1.4).pair(0, 1)
    assert lq.shape == gt.shape == (64, 64, 3) and not np.array_equal(lq, gt)
    with pytest.raises(UsageError, match="no gt/ and lq/"):
        plan_data(load_config("tiny", [f"data.paired_dir={source}"]), RunLayout(tmp_path / "run2"), quiet=True)


def test_sampler_batches_depend_only_on_the_iteration() -> None:
    whole = list(IterationSampler(10, 3, seed=5, start=0, end=9))
    assert list(IterationSampler(10, 3, seed=5, start=4, end=9)) == whole[4:]
    for epoch in range(3):  # 3 batches per epoch, one face left over
        keys = [key for batch in whole[3 * epoch : 3 * epoch + 3] for key in batch]
        assert len({index for index, _ in keys}) == 9 and {e for _, e in keys} == {epoch + 1}
    assert whole[:3] != whole[3:6]
    ranks = [list(IterationSampler(10, 2, seed=5, start=0, end=2, rank=r, world_size=2)) for r in (0, 1)]
    for step in range(2):
        assert not set(ranks[0][step]) & set(ranks[1][step])
    with pytest.raises(UsageError, match="fewer than one batch"):
        IterationSampler(3, 2, seed=0, start=0, end=1, world_size=2)


def test_face_pairs_are_deterministic_and_flip_the_boxes(faces: Path) -> None:
    items = [FaceItem(p.name, p, None, tuple(map(tuple, template_for(64)))) for p in sorted(faces.iterdir())[:2]]
    dataset = FacePairs(items, 64, ["paper", "miner"], seed=3, hflip=True, eye_enlarge=1.4)
    first, again = dataset[(0, 1)], dataset[(0, 1)]
    for key in ("lq", "gt", "boxes"):
        torch.testing.assert_close(first[key], again[key])
    assert first["lq"].shape == first["gt"].shape == (3, 64, 64) and first["boxes"].shape == (3, 4)
    assert not torch.equal(dataset[(0, 2)]["lq"], first["lq"])  # fresh degradation each epoch
    flips = [dataset.pair(0, epoch)[2] for epoch in range(1, 12)]
    assert any(flips) and not all(flips)
    straight, mirrored = dataset.boxes[0]
    np.testing.assert_allclose(mirrored[0, [0, 2]], 64 - straight[1, [2, 0]], atol=1e-4)  # eyes swap sides


def test_face_pairs_draw_a_degradation_scale_per_sample(faces: Path) -> None:
    items = [FaceItem(p.name, p, None, tuple(map(tuple, template_for(64)))) for p in sorted(faces.iterdir())[:1]]
    arguments = (items, 64, ["paper", "miner"], 3, False, 1.4)
    single, mixed = FacePairs(*arguments), FacePairs(*arguments, scales=(1, 2))
    gt = prepare_gt(read_image(items[0].gt).rgb, 64, "stretch")
    for epoch in range(1, 4):  # one scale draws nothing: the samples of earlier runs stay the same
        rng = np.random.default_rng(image_seed(3, items[0].name, epoch))
        params = sample_params(["paper", "miner"][int(rng.integers(2))], rng)  # the draws before scales existed
        np.testing.assert_array_equal(single.pair(0, epoch)[0], apply_degradation(gt, params))
    differing = sum(not np.array_equal(single.pair(0, e)[0], mixed.pair(0, e)[0]) for e in range(1, 9))
    assert 0 < differing < 8
    config = load_config("tiny", ["data.degrade_scales=[1, 2]"])
    assert config.data.degrade_scales == (1, 2)
    with pytest.raises(ConfigError, match=r"data\.degrade_scales"):
        load_config("tiny", ["data.degrade_scales=[0]"])


def test_zero_constant_input_fine_tunes_with_the_constant_kept_at_zero(
    tiny_run: tuple[Path, float], faces: Path, tmp_path: Path
) -> None:
    run_dir, _ = tiny_run
    out_dir = tmp_path / "stage2"
    extra = [f"model.init={run_dir}", "model.zero_constant_input=true", "train.iterations=3", "log.val_every=0"]
    train("tiny", overrides=_settings(faces, out_dir, *extra), quiet=True)
    state = load_checkpoint(out_dir / "checkpoints" / "iter_00000003.pt")
    initial = load_checkpoint(run_dir / "checkpoints" / "iter_00000020.pt")["modules"]["generator_ema"]
    key = "stylegan_decoder.constant_input.weight"
    assert initial[key].abs().sum() > 0
    for module in ("generator", "generator_ema"):
        weights = state["modules"][module]
        assert weights[key].abs().sum() == 0, module
    trained = state["modules"]["generator"]
    assert any(not torch.equal(initial[name], trained[name]) for name in initial if name != key)


def test_a_run_folder_without_a_current_export_restores_its_newest_checkpoint(
    tiny_run: tuple[Path, float], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 20: ``restore --model RUN_DIR`` on an unfinished run uses the newest EMA and says which iteration."""
    from minerrestore.archs.checkpoints import inspect_checkpoint
    from minerrestore.models.catalogue import load_model

    run_dir, _ = tiny_run
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run_dir / "checkpoints", unfinished / "checkpoints")
    capsys.readouterr()
    model = load_model(unfinished)
    assert "using the EMA generator of iteration 20 (iter_00000020.pt)" in capsys.readouterr().err
    ema = load_checkpoint(RunLayout(run_dir).checkpoint(20))["modules"]["generator_ema"]
    for key, value in model.net.state_dict().items():
        torch.testing.assert_close(value, ema[key])
    info = inspect_checkpoint(RunLayout(run_dir).checkpoint(10))  # `weights inspect` reads our checkpoints
    assert info["source_key"] == "modules.generator_ema" and info["layout"] == "restorer"
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"neither restorer_ema\.safetensors nor a checkpoint"):
        load_model(tmp_path / "empty")


def test_a_diverging_run_stops_with_a_checkpoint_naming_the_loss(faces: Path, tmp_path: Path) -> None:
    """Issue 20: an absurd learning rate stops at the first non-finite loss, with a checkpoint and no export."""
    out_dir = tmp_path / "absurd"
    result = train("tiny", overrides=_settings(faces, out_dir, "optim.lr_g=100", "train.iterations=8"), quiet=True)
    assert result.diverged is not None and result.diverged.startswith("loss g_") and "at iteration" in result.diverged
    assert result.iteration < 8 and not result.interrupted and result.ema_weights is None
    assert result.checkpoint is not None and result.checkpoint.is_file()
    events = [r["event"] for r in read_log(out_dir / "log.jsonl")]
    assert "guard" in events and "diverged" in events


def test_face_pairs_clean_the_input_as_the_restorer_says(faces: Path) -> None:
    from minerrestore.baselines import nlm_denoise

    items = [FaceItem(p.name, p, None, tuple(map(tuple, template_for(64)))) for p in sorted(faces.iterdir())[:1]]
    plain, cleaned = (FacePairs(items, 64, ["paper"], 3, False, 1.4, input_denoise=h) for h in (0.0, 5.0))
    lq, gt, _ = plain.pair(0, 1)
    clean_lq, same_gt, _ = cleaned.pair(0, 1)
    np.testing.assert_array_equal(same_gt, gt)
    np.testing.assert_array_equal(clean_lq, nlm_denoise(lq, 5.0))
    assert not np.array_equal(clean_lq, lq)
    config = load_config("tiny", ["model.arch.input_denoise=5"])
    assert config.model.restorer().input_denoise == 5.0
    with pytest.raises(ConfigError, match="input_denoise"):
        load_config("tiny", ["model.arch.input_denoise=-1"])


def test_grey_critics_see_only_grey_faces(faces: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``losses.gan_grey``: every batch a discriminator sees (fake, real, R1) has three equal channels."""
    from minerrestore.archs.discriminators import FacialComponentDiscriminator, StyleGAN2Discriminator

    seen: list[torch.Tensor] = []
    for critic in (StyleGAN2Discriminator, FacialComponentDiscriminator):
        forward = critic.forward

        def recording(self, x, *args, _forward=forward, **kwargs):  # type: ignore[no-untyped-def]
            seen.append(x.detach())
            return _forward(self, x, *args, **kwargs)

        monkeypatch.setattr(critic, "forward", recording)
    extra = ["losses.gan_grey=true", "losses.r1_every=1", "train.iterations=2", "log.val_every=0"]
    train("tiny", overrides=_settings(faces, tmp_path / "grey", *extra), quiet=True)
    assert len(seen) >= 8
    for batch in seen:
        assert torch.equal(batch[:, 0], batch[:, 1]) and torch.equal(batch[:, 1], batch[:, 2])
