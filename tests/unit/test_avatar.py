"""Avatars: the directory format, `avatar prepare`, the bundled avatar and the shared frame store."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import yaml
from skimage import data

from lipstream.cli import main
from media_server.avatars.bundled import N_FRAMES, ensure_bundled_avatar
from media_server.avatars.format import AvatarError, load_avatar
from media_server.avatars.geometry import make_crop
from media_server.avatars.prepare import FaceTracker, face_track, mouth_box, prepare_avatar
from media_server.avatars.store import FrameStore

# Where the lips of skimage.data.astronaut() really are (measured by eye on the image).
ASTRONAUT_MOUTH = (223.5, 147.0)
ASTRONAUT_LIPS_WIDTH = 41.0


def astronaut_bgr() -> np.ndarray:
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def write_avatar_dir(
    directory: Path,
    n_frames: int = 3,
    size: tuple[int, int] = (64, 48),
    rects: list[list[int]] | None = None,
    manifest: dict | None = None,
) -> Path:
    """A small valid avatar on disk: distinct grey frames, one 32 px box per frame."""
    width, height = size
    (directory / "frames").mkdir(parents=True)
    for i in range(n_frames):
        frame = np.full((height, width, 3), 40 + 50 * i, np.uint8)
        cv2.imwrite(str(directory / "frames" / f"{i:03d}.png"), frame)
    (directory / "crop_rects.json").write_text(json.dumps(rects if rects is not None else [[8, 8, 40, 40]] * n_frames))
    manifest = manifest if manifest is not None else {"name": directory.name}
    (directory / "avatar.yaml").write_text(yaml.safe_dump(manifest))
    return directory


def write_video(path: Path, frames: list[np.ndarray], fps: int) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "12"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        container.mux(stream.encode(None))


@pytest.fixture(scope="module")
def fresh_default(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled avatar built from scratch by this code (not a cached copy)."""
    return ensure_bundled_avatar(tmp_path_factory.mktemp("avatars") / "default")


# --- the bundled avatar and the mouth contract ---------------------------------------------------


def test_default_avatar_is_a_loadable_two_second_loop(fresh_default: Path) -> None:
    avatar = FrameStore().get(fresh_default)
    assert (avatar.name, avatar.fps, avatar.model) == ("default", 25, "parametric-mouth")
    assert (avatar.n_frames, avatar.width, avatar.height) == (N_FRAMES, 512, 512)
    assert sorted(p.suffix for p in (fresh_default / "frames").iterdir()) == [".jpg"] * N_FRAMES
    sides = avatar.rects[:, 2] - avatar.rects[:, 0]
    assert np.array_equal(sides, avatar.rects[:, 3] - avatar.rects[:, 1])
    assert (avatar.rects % 2 == 0).all()
    # Detected boxes on a gently moving head: all on the face, never jumping between frames.
    centres = (avatar.rects[:, :2] + avatar.rects[:, 2:]) / 2
    assert np.abs(centres - ASTRONAUT_MOUTH).max() < 20
    assert np.abs(np.diff(centres, axis=0)).max() <= 4
    assert np.abs(np.diff(sides)).max() <= 4


def test_default_avatar_is_built_once(fresh_default: Path) -> None:
    manifest = fresh_default / "avatar.yaml"
    before = manifest.stat().st_mtime_ns
    assert ensure_bundled_avatar(fresh_default) == fresh_default
    assert manifest.stat().st_mtime_ns == before
    assert not [p for p in fresh_default.parent.iterdir() if p.name.startswith(".")]


def test_mouth_lands_where_the_model_expects_it() -> None:
    image = astronaut_bgr()
    tracker = FaceTracker()
    tracker.add(image)
    x0, y0, x1, y1 = mouth_box(face_track(tracker.faces, "astronaut")[0], 512, 512)
    scale = 328 / (x1 - x0)
    mouth_in_crop = ((ASTRONAUT_MOUTH[0] - x0) * scale - 4, (ASTRONAUT_MOUTH[1] - y0) * scale - 4)
    assert abs(mouth_in_crop[0] - 160) <= 8 and abs(mouth_in_crop[1] - 176) <= 8
    assert abs(ASTRONAUT_LIPS_WIDTH * scale - 140) <= 15


# --- avatar prepare ------------------------------------------------------------------------------


def test_prepare_photo_gives_a_one_frame_avatar(tmp_path: Path) -> None:
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), astronaut_bgr())
    out = prepare_avatar(photo, "astro", tmp_path / "astro", 25)
    assets = load_avatar(out)
    assert assets.manifest.name == "astro" and len(assets.frames_i420) == 1
    (rect,) = assets.rects
    assert rect[0] < ASTRONAUT_MOUTH[0] < rect[2] and rect[1] < ASTRONAUT_MOUTH[1] < rect[3]


def test_prepare_video_resamples_to_25_fps_and_fills_missed_faces(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    face = cv2.resize(astronaut_bgr(), (256, 256))
    frames = [face.copy() for _ in range(15)]
    for i in (4, 5):
        frames[i][:] = 128  # no face here
    video = tmp_path / "clip.mp4"
    write_video(video, frames, fps=30)
    with caplog.at_level(logging.WARNING):
        out = prepare_avatar(video, "clip", tmp_path / "clip", 25)
    assert "no face in frames" in caplog.text
    assets = load_avatar(out)
    # 15 frames at 30 fps last 0.5 s: 13 frames at 25 fps (the last one partly covered).
    assert assets.manifest.fps == 25 and len(assets.frames_i420) == 13
    # The blank frames (resampled to 3-4) got boxes from their neighbours.
    assert np.abs(assets.rects - assets.rects[0]).max() <= 2


def test_prepare_rejects_input_without_a_face(tmp_path: Path) -> None:
    photo = tmp_path / "wall.png"
    cv2.imwrite(str(photo), np.full((200, 200, 3), 90, np.uint8))
    with pytest.raises(AvatarError, match=r"no face found in .*wall\.png"):
        prepare_avatar(photo, "wall", tmp_path / "wall", 25)
    assert not (tmp_path / "wall").exists()


def test_prepare_rejects_mostly_faceless_video(tmp_path: Path) -> None:
    frames = [np.full((128, 128, 3), 128, np.uint8) for _ in range(6)]
    frames[0] = cv2.resize(astronaut_bgr(), (128, 128))
    video = tmp_path / "mostly_blank.mp4"
    write_video(video, frames, fps=25)
    with pytest.raises(AvatarError, match="only 1 of the 6 frames"):
        prepare_avatar(video, "blank", tmp_path / "blank", 25)


@pytest.mark.parametrize("content", [b"", b"this is not a video"], ids=["empty", "garbage"])
def test_prepare_rejects_unreadable_input(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "input.mp4"
    path.write_bytes(content)
    with pytest.raises(AvatarError, match="input.mp4"):
        prepare_avatar(path, "x", tmp_path / "x", 25)


def test_prepare_refuses_to_overwrite(tmp_path: Path) -> None:
    existing = write_avatar_dir(tmp_path / "taken")
    with pytest.raises(AvatarError, match="already exists"):
        prepare_avatar(existing / "frames" / "000.png", "taken", existing, 25)


# --- loading and validation ----------------------------------------------------------------------


def _remove(path: Path) -> None:
    path.unlink()


BROKEN: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing yaml": (lambda d: _remove(d / "avatar.yaml"), r"avatar\.yaml is missing"),
    "bad yaml field": (lambda d: (d / "avatar.yaml").write_text("name: a\nfps: -3\n"), r"fps"),
    "unknown yaml key": (lambda d: (d / "avatar.yaml").write_text("name: a\nfsp: 25\n"), r"fsp"),
    "no frames": (lambda d: [_remove(p) for p in (d / "frames").iterdir()], r"has no frames"),
    "unreadable frame": (lambda d: (d / "frames" / "001.png").write_bytes(b"junk"), r"001\.png cannot be read"),
    "rect count": (lambda d: (d / "crop_rects.json").write_text("[[8, 8, 40, 40]]"), r"1 rects for 3 frames"),
    "rect outside": (
        lambda d: (d / "crop_rects.json").write_text("[[8,8,40,40],[40,8,72,40],[8,8,40,40]]"),
        r"rect 1 .* outside the 64x48 frame",
    ),
    "not square": (
        lambda d: (d / "crop_rects.json").write_text("[[8,8,40,40],[8,8,40,40],[8,8,40,30]]"),
        r"rect 2 .* not square",
    ),
    "degenerate": (
        lambda d: (d / "crop_rects.json").write_text("[[8,8,8,8],[8,8,40,40],[8,8,40,40]]"),
        r"rect 0 .* degenerate",
    ),
    "rects not a list": (lambda d: (d / "crop_rects.json").write_text('{"a": 1}'), r"crop_rects\.json must be"),
    "different sizes": (
        lambda d: cv2.imwrite(str(d / "frames" / "002.png"), np.zeros((48, 66, 3), np.uint8)),
        r"002\.png is 66x48, the first frame is 64x48",
    ),
    "bad idle frames": (
        lambda d: (d / "avatar.yaml").write_text("name: a\nidle_frames: [0, 5]\n"),
        r"idle_frames \[5\]",
    ),
    "missing video": (lambda d: (d / "avatar.yaml").write_text("name: a\nvideo: gone.mp4\n"), r"gone\.mp4 .* missing"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_load_names_what_is_wrong(tmp_path: Path, case: str) -> None:
    directory = write_avatar_dir(tmp_path / "av")
    break_it, message = BROKEN[case]
    break_it(directory)
    with pytest.raises(AvatarError, match=message):
        load_avatar(directory)


def test_load_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(AvatarError, match="does not exist"):
        load_avatar(tmp_path / "nowhere")


def test_odd_frames_are_cropped_to_even_and_defaults_apply(tmp_path: Path) -> None:
    assets = load_avatar(write_avatar_dir(tmp_path / "odd", size=(65, 49), rects=[[0, 0, 49, 49]] * 3))
    assert (assets.width, assets.height) == (64, 48)
    assert assets.frames_i420.shape == (3, 72, 64)
    manifest = assets.manifest
    assert (manifest.fps, manifest.model, manifest.crop_size) == (25, "parametric-mouth", 328)
    store_avatar = FrameStore().get(tmp_path / "odd")
    assert tuple(store_avatar.rects[0]) == (0, 0, 48, 48)  # clamped into the even frame


def test_video_avatar_loads_every_frame(tmp_path: Path) -> None:
    directory = write_avatar_dir(tmp_path / "vid", n_frames=1, manifest={"name": "vid", "video": "loop.mp4"})
    frames = [np.full((48, 64, 3), 30 * i, np.uint8) for i in range(4)]
    write_video(directory / "loop.mp4", frames, fps=25)
    (directory / "crop_rects.json").write_text(json.dumps([[8, 8, 40, 40]] * 4))
    assets = load_avatar(directory)
    assert assets.frames_i420.shape == (4, 72, 64)
    luma = assets.frames_i420[:, :48].mean(axis=(1, 2))
    assert np.all(np.diff(luma) > 20)  # in order, each frame distinct


def test_idle_sequence_ping_pongs_over_the_idle_frames(tmp_path: Path) -> None:
    store = FrameStore()
    every = store.get(write_avatar_dir(tmp_path / "all", n_frames=4, rects=[[8, 8, 40, 40]] * 4))
    assert every.idle_sequence() == (0, 1, 2, 3, 2, 1)
    manifest = {"name": "s", "idle_frames": [1, 2, 3]}
    chosen = store.get(write_avatar_dir(tmp_path / "some", n_frames=4, rects=[[8, 8, 40, 40]] * 4, manifest=manifest))
    assert chosen.idle_sequence() == (1, 2, 3, 2)


# --- the frame store -----------------------------------------------------------------------------


def test_store_frames_are_shared_read_only_i420_with_precomputed_crops(tmp_path: Path) -> None:
    store = FrameStore()
    avatar = store.get(write_avatar_dir(tmp_path / "av"))
    assert store.get(tmp_path / "av") is avatar
    assert avatar.frames.shape == (3, 72, 64) and avatar.frames[0].flags.c_contiguous
    assert avatar.crops_i420.shape == (3, 320 * 320 * 3 // 2)
    for array in (avatar.frames, avatar.crops_i420, avatar.rects):
        with pytest.raises(ValueError):
            array[0] = 0
    expected = make_crop(avatar.frames[1], tuple(avatar.rects[1]), 64, 48, avatar.geometry)
    assert np.array_equal(avatar.crops_i420[1], expected)
    assert avatar.nbytes >= avatar.frames.nbytes + avatar.crops_i420.nbytes


def mapped_file(array: np.ndarray) -> Path:
    """The file an array is a view of a memory map of."""
    assert isinstance(array.base, np.memmap), "not memory-mapped"
    return Path(array.base.filename)


def test_stores_map_one_decoded_copy_that_follows_the_sources(tmp_path: Path) -> None:
    """Two stores (as two worker processes) map the same files; preparing the avatar again replaces them."""
    directory = write_avatar_dir(tmp_path / "av")
    cache = tmp_path / "frames"
    first, second = FrameStore(cache=cache).get(directory), FrameStore(cache=cache).get(directory)
    assert mapped_file(first.frames) == mapped_file(second.frames)
    assert mapped_file(first.frames).is_relative_to(cache)
    assert np.array_equal(first.frames, load_avatar(directory).frames_i420)

    cv2.imwrite(str(directory / "frames" / "001.png"), np.full((48, 64, 3), 250, np.uint8))
    changed = FrameStore(cache=cache).get(directory)
    assert mapped_file(changed.frames) != mapped_file(first.frames)
    assert np.array_equal(changed.frames, load_avatar(directory).frames_i420)
    assert not mapped_file(first.frames).exists(), "the old version stays on disk"


def test_concurrent_gets_load_once(tmp_path: Path) -> None:
    store = FrameStore()
    directory = write_avatar_dir(tmp_path / "av")
    barrier = threading.Barrier(8)

    def get(_: int) -> object:
        barrier.wait()
        return store.get(directory)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(get, range(8)))
    assert all(result is results[0] for result in results)


def test_store_evicts_least_recently_used_beyond_budget(tmp_path: Path) -> None:
    a, b, c = (write_avatar_dir(tmp_path / name) for name in "abc")
    one_avatar_mb = FrameStore().get(a).nbytes / 2**20
    store = FrameStore(memory_budget_mb=2.5 * one_avatar_mb)
    first_a, first_b = store.get(a), store.get(b)
    assert store.get(a) is first_a  # a is now the most recently used
    store.get(c)  # over budget: b goes
    assert store.get(a) is first_a
    assert store.get(b) is not first_b
    assert store.resident_bytes <= 2.5 * one_avatar_mb * 2**20


def test_store_load_errors_propagate_and_do_not_stick(tmp_path: Path) -> None:
    store = FrameStore()
    directory = write_avatar_dir(tmp_path / "av")
    (directory / "crop_rects.json").write_text("[]")
    with pytest.raises(AvatarError):
        store.get(directory)
    (directory / "crop_rects.json").write_text(json.dumps([[8, 8, 40, 40]] * 3))
    assert store.get(directory).n_frames == 3


# --- CLI -----------------------------------------------------------------------------------------


def run_cli(argv: list[str]) -> int:
    """`lipstream ARGV` as the console script runs it."""
    return main(argv)


def test_cli_prepare_and_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LIPSTREAM_CACHE_DIR", str(tmp_path / "cache"))
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut_bgr())
    assert run_cli(["avatar", "prepare", str(photo), "--name", "eileen"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "cache" / "avatars" / "eileen")
    assert run_cli(["avatar", "list"]) == 0
    names = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["default", "eileen"]


def test_cli_uses_the_configured_avatar_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LIPSTREAM_CACHE_DIR", str(tmp_path / "cache"))
    write_avatar_dir(tmp_path / "mine" / "anna")
    config = tmp_path / "edge.yaml"
    config.write_text(yaml.safe_dump({"avatars": {"directory": str(tmp_path / "mine")}}))
    assert run_cli(["avatar", "list", "--config", str(config)]) == 0
    listed = dict(line.split("\t") for line in capsys.readouterr().out.splitlines())
    assert list(listed) == ["anna", "default"]
    assert listed["anna"].startswith(str(tmp_path / "mine" / "anna"))
    monkeypatch.setenv("LIPSTREAM_EDGE_AVATARS__DIRECTORY", str(tmp_path / "env"))
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut_bgr())
    assert run_cli(["avatar", "prepare", str(photo), "--name", "eve"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "env" / "eve")


@pytest.mark.parametrize("name", ["../up", ".hidden", "default"])
def test_cli_prepare_refuses_names_that_are_not_plain(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut_bgr())
    assert run_cli(["avatar", "prepare", str(photo), "--name", name, "--avatars", str(tmp_path)]) == 2
    assert "name" in capsys.readouterr().err


def test_cli_prepare_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.mp4"
    assert run_cli(["avatar", "prepare", str(missing), "--name", "x", "--out", str(tmp_path / "x")]) == 2
    assert "missing.mp4 does not exist" in capsys.readouterr().err
