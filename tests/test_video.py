"""Videos: frame count, timestamps, audio passthrough, tracking, corrupt clips in a folder."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from minerrestore.errors import UsageError
from minerrestore.face.detect import Face
from tests.conftest import FACES, PORTRAITS

av = pytest.importorskip("av")

from minerrestore.lowlight import enhance_low_light  # noqa: E402
from minerrestore.restore import Restorer  # noqa: E402
from minerrestore.video import (  # noqa: E402
    FaceTracker,
    SettingsSmoother,
    VideoError,
    VideoOptions,
    restore_video,
)


def face_boxes(index: int, size: tuple[int, int], faces: int = 1) -> list[tuple[int, int, int]]:
    """(x, y, side) of each face in frame ``index`` of :func:`make_clip`: drifting right and down,
    zooming, and back to the start every 40 frames (long clips look like short ones)."""
    width, height = size
    index %= 40
    base = min(height * 5 // 8, width // (faces + 1))
    boxes = []
    for face in range(faces):
        side = min(base + 2 * index * base // 80, height - 1)
        x = min(width * face // faces + base // 8 + 3 * index * base // 80, width - side)
        y = min(height // 10 + index * base // 80, height - side)
        boxes.append((x, y, side))
    return boxes


def make_clip(
    path: Path,
    frames: int = 8,
    size: tuple[int, int] = (160, 128),
    audio: bool = True,
    vfr: bool = False,
    faces: int = 1,
    rate: int = 30,
    noise: Sequence[float] = (4.0,),
    crf: int | None = None,
) -> Path:
    """A seeded clip: shared portraits moving and zooming over a grey background, with noise.

    With ``audio`` a 440 Hz AAC track; with ``vfr`` the frame gaps alternate 1 and 3 ticks of 1/``rate`` s.
    ``noise``: the noise std of frame ``i`` is ``noise[i % len(noise)]``; ``crf``: x264's quality
    (None: its default, 23, which smooths much of the noise away).
    """
    rng = np.random.default_rng(7)
    portraits = [cv2.cvtColor(cv2.imread(str(FACES / name)), cv2.COLOR_BGR2RGB) for name in PORTRAITS]
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, rate)
        if crf is not None:
            stream.options = {"crf": str(crf)}
        sound = None
        if audio:
            sound = container.add_stream("aac", rate=16000)
            sound.layout = "mono"
        pts = 0
        for index in range(frames):
            canvas = np.full((height, width, 3), 120, np.uint8)
            for face, (x, y, side) in enumerate(face_boxes(index, size, faces)):
                portrait = portraits[face % len(portraits)]
                canvas[y : y + side, x : x + side] = cv2.resize(portrait, (side, side), interpolation=cv2.INTER_AREA)
            noisy = np.clip(canvas + rng.normal(0, noise[index % len(noise)], canvas.shape), 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(noisy, format="rgb24")
            frame.pts = pts
            pts += (1 if index % 2 == 0 else 3) if vfr else 1
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if sound is not None:
            samples = np.sin(2 * np.pi * 440 * np.arange(16000 * frames // rate) / 16000).astype(np.float32)
            for start in range(0, len(samples), 1024):
                chunk = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="flt", layout="mono")
                chunk.sample_rate, chunk.pts = 16000, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return path


def video_timestamps(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [round(float(frame.pts * frame.time_base) * 1000) for frame in container.decode(stream)]


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


@pytest.fixture
def restorer(tiny_model: Path) -> Restorer:
    return Restorer(tiny_model, device="cpu", precision="float32", upscale=1.0)


@pytest.mark.parametrize("vfr", [False, True])
def test_frames_timestamps_and_audio_are_kept(
    restorer: Restorer, tmp_path: Path, vfr: bool, one_torch_thread: None
) -> None:
    clip = make_clip(tmp_path / "clip.mp4", vfr=vfr)
    out = tmp_path / "out.mp4"
    info = restore_video(restorer, clip, out)
    assert info["frames"] == 8 and len(info["faces_per_frame"]) == 8
    assert video_timestamps(out) == video_timestamps(clip)
    assert audio_packets(out) == audio_packets(clip) and info["audio"] == "aac"
    assert sum(info["faces_per_frame"]) >= 6 and info["tracks"] == 1  # one face, followed as one track
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_a_truncated_video_is_named_and_leaves_no_output(restorer: Restorer, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", audio=False)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    with pytest.raises(VideoError, match=r"broken\.mp4"):
        restore_video(restorer, broken, tmp_path / "out" / "broken.mp4")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_tracker_smooths_landmarks_and_bridges_missed_frames() -> None:
    tracker = FaceTracker(max_missed=2)
    rng = np.random.default_rng(0)
    base = np.array([[40, 50], [60, 50], [50, 60], [42, 70], [58, 70]], np.float32)
    raw, smoothed = [], []
    for index in range(20):
        landmarks = base + rng.normal(0, 1.5, base.shape).astype(np.float32)
        faces = [] if index in (8, 9) else [Face((30.0, 35.0, 70.0, 80.0), 0.9, landmarks)]
        out = tracker.update(faces)
        assert len(out) == 1 and out[0][0] == 0  # the same track, also through the two misses
        raw.append(landmarks)
        smoothed.append(out[0][1].landmarks)
    jitter = lambda series: float(np.abs(np.diff(np.array(series), axis=0)).mean())  # noqa: E731
    assert jitter(smoothed) < 0.5 * jitter(raw)
    assert tracker.update([]) and tracker.update([]) and not tracker.update([])  # gone after 3 misses


def test_without_pyav_a_video_says_what_to_install(
    restorer: Restorer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(VideoError, match=r'^videos need PyAV: pip install "minerrestore\[video\]"$'):
        restore_video(restorer, tmp_path / "clip.mp4", tmp_path / "out.mp4")


def test_bad_video_options_name_their_flags() -> None:
    with pytest.raises(UsageError, match="video codec 'h265'") as caught:
        VideoOptions(codec="h265")
    assert caught.value.settings == ("video_codec",)
    with pytest.raises(UsageError, match="crf"):
        VideoOptions(crf=60)


def test_a_folder_mixing_images_and_videos(
    tiny_model: Path, portraits: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], one_torch_thread: None
) -> None:
    from minerrestore.cli import main

    make_clip(portraits / "clip.mov", frames=4)
    (portraits / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 certainly not a video")
    out = tmp_path / "out"
    code = main(["restore", str(portraits), "--out", str(out), "--model", str(tiny_model), "--device", "cpu"])
    assert code == 1
    err = capsys.readouterr().err
    assert "corrupt.mp4" in err and "Traceback" not in err
    assert sorted(p.name for p in (out / "restored_imgs").iterdir()) == sorted(PORTRAITS)
    assert [p.name for p in (out / "restored_videos").iterdir()] == ["clip.mov"]
    items = {Path(item["item"]).name: item for item in json.loads((out / "report.json").read_text())["items"]}
    assert items["clip.mov"]["info"]["frames"] == 4 and items["corrupt.mp4"]["status"] == "failed"


def test_skip_existing_skips_a_restored_video(restorer: Restorer, tmp_path: Path, one_torch_thread: None) -> None:
    from minerrestore.restore_files import restore_paths

    (tmp_path / "in").mkdir()
    clip = make_clip(tmp_path / "in" / "clip.mkv", frames=3)
    first = restore_paths(clip, tmp_path / "out", restorer=restorer, quiet=True)
    assert [r.status for r in first.results] == ["done"] and first.results[0].info["frames"] == 3
    again = restore_paths(clip, tmp_path / "out", restorer=restorer, quiet=True, skip_existing=True)
    assert [r.status for r in again.results] == ["skipped"]
    assert (tmp_path / "out" / "restored_videos" / "clip.mkv").is_file()


def _jitter(series: Sequence[float]) -> float:
    """Mean absolute frame-to-frame change."""
    return float(np.abs(np.diff(np.asarray(series, dtype=np.float64), axis=0)).mean())


def test_steady_settings_change_less_than_per_frame_ones(
    restorer: Restorer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_torch_thread: None
) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=12, audio=False, noise=(1.0, 14.0), crf=4)  # noise alternates
    restore = restorer.restore
    recorded: list[tuple[float, float, float]] = []

    def recording(*args: object, **kwargs: object) -> object:
        result = restore(*args, **kwargs)
        for face in result.faces:  # the report holds the values the face was restored with
            assert face.strength == pytest.approx(restorer.strength(face.estimate))
            recorded.append((face.strength, face.estimate.denoise, face.estimate.sharpen))
        return result

    monkeypatch.setattr(restorer, "restore", recording)
    settings = {}
    for steady in (False, True):
        recorded.clear()
        info = restore_video(restorer, clip, tmp_path / f"{steady}.mp4", options=VideoOptions(steady_settings=steady))
        assert info["tracks"] == 1 and info["steady_settings"] is steady and len(recorded) >= 10
        settings[steady] = np.array(recorded)
    per_frame, steady = settings[False], settings[True]
    for column in range(3):  # strength, denoise, sharpen
        assert _jitter(per_frame[:, column]) > 0
        assert _jitter(steady[:, column]) < 0.5 * _jitter(per_frame[:, column])


def test_steady_low_light_parameters_and_an_unchanged_still_path(restorer: Restorer, one_torch_thread: None) -> None:
    rng = np.random.default_rng(3)
    portrait = cv2.cvtColor(cv2.imread(str(FACES / PORTRAITS[0])), cv2.COLOR_BGR2RGB)
    lamps = (np.array([0.1, 0.08, 0.06]), np.array([0.12, 0.14, 0.16]))  # exposure and cast alternate
    frames = [
        np.clip(portrait * lamps[index % 2] + rng.normal(0, 2, portrait.shape), 0, 255).astype(np.uint8)
        for index in range(8)
    ]
    smoother = SettingsSmoother()
    own = [enhance_low_light(frame)[1] for frame in frames]
    steady = [enhance_low_light(frame, smoother.low_light)[1] for frame in frames]
    for key in ("gain", "gamma"):
        assert _jitter([p[key] for p in steady]) < 0.5 * _jitter([p[key] for p in own])
    assert _jitter([p["colour_gains"] for p in steady]) < 0.5 * _jitter([p["colour_gains"] for p in own])
    # what the settings smoothing passes a still photo through leaves it exactly as it was
    image, params = enhance_low_light(frames[0])
    same, same_params = enhance_low_light(frames[0], lambda name, value: value)
    assert np.array_equal(image, same) and params == same_params
    plain = restorer.restore(portrait)
    through = restorer.restore(portrait, steady_estimate=lambda position, estimate: estimate)
    assert plain.faces and np.array_equal(plain.image, through.image)
    assert [f.estimate for f in plain.faces] == [f.estimate for f in through.faces]
