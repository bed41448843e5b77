"""The generated ONNX models: contract, mouth behaviour, UNet size, cache and CLI."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from inference_service.models import builtin as bm
from inference_service.models.graph import DESCRIPTION_KEY, LOOKAHEAD_KEY
from inference_service.models.parametric_mouth import opening
from lipstream.cli import main

CROP = 320
MASK = (5, 5, 314, 309)  # x0, y0, x1, y1 of the zeroed rectangle in the masked copy
MOUTH_AREA = (slice(176, 240), slice(100, 220))  # rows, cols around and below the lip line
INTERIOR = (slice(180, 200), slice(135, 185))
FAR_ROWS = slice(0, 160)
CENTRE_FRAME = 8  # audio contract: frame i itself in the window i-8..i+7
ENERGY = 0  # audio contract: the per-frame vector's energy component


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def mouth(cache: Path) -> ort.InferenceSession:
    return _session(bm.ensure_builtin("parametric-mouth", cache))


@pytest.fixture(scope="module")
def unet_path(cache: Path) -> Path:
    return bm.ensure_builtin("synthetic-unet", cache)


def _face_crop() -> np.ndarray:
    """[3,320,320] BGR: skin with a soft vertical shade and a darker lip band at the mouth."""
    rows = np.linspace(0.0, 1.0, CROP, dtype=np.float32)[:, None]
    skin = np.array([0.45, 0.58, 0.82], np.float32)[:, None, None]
    crop = np.broadcast_to(skin * (1.05 - 0.2 * rows), (3, CROP, CROP)).copy()
    yy, xx = np.mgrid[0:CROP, 0:CROP]
    lips = ((xx - 160) / 70.0) ** 2 + ((yy - 176) / 14.0) ** 2 <= 1.0
    crop[:, lips] = np.array([0.32, 0.30, 0.62], np.float32)[:, None]
    return crop


def _model_input(crop: np.ndarray, batch: int) -> np.ndarray:
    masked = crop.copy()
    x0, y0, x1, y1 = MASK
    masked[:, y0 : y1 + 1, x0 : x1 + 1] = 0.0
    return np.repeat(np.concatenate([crop, masked])[None], batch, axis=0)


def _audio(centre_energies: Sequence[float], other_energy: float | None = None) -> np.ndarray:
    """[B,32,16,16] windows: every frame carries its item's energy, or `other_energy` off-centre."""
    window = np.zeros((len(centre_energies), 16, 512), np.float32)
    centre = np.asarray(centre_energies, np.float32)[:, None]
    window[:, :, ENERGY] = centre if other_energy is None else other_energy
    window[:, CENTRE_FRAME, ENERGY] = centre[:, 0]
    return window.reshape(-1, 32, 16, 16)


def _speak(session: ort.InferenceSession, crop: np.ndarray, audio: np.ndarray) -> np.ndarray:
    (out,) = session.run(None, {"input": _model_input(crop, len(audio)), "audio": audio})
    return out


def _mouth_change(item: np.ndarray, crop: np.ndarray) -> float:
    """Mean absolute change of one [3,H,W] output around the mouth."""
    return float(np.abs(item - crop)[(slice(None), *MOUTH_AREA)].mean())


@pytest.mark.parametrize("name", list(bm.BUILTIN_MODELS))
def test_model_builds_checks_and_runs_with_any_batch(name: str, cache: Path) -> None:
    path = bm.ensure_builtin(name, cache)
    onnx.checker.check_model(str(path))
    model = onnx.load(str(path))
    props = {prop.key: prop.value for prop in model.metadata_props}
    assert props[LOOKAHEAD_KEY] == str(bm.BUILTIN_MODELS[name].lookahead_frames)
    assert "untrained" in props[DESCRIPTION_KEY]
    assert all(value.type.tensor_type.shape.dim[0].dim_param == "batch" for value in model.graph.input)

    session = _session(path)
    rng = np.random.default_rng(1)
    for batch in (1, 3):
        image = rng.random((batch, 6, CROP, CROP), dtype=np.float32)
        audio = rng.uniform(-4.0, 4.0, (batch, 32, 16, 16)).astype(np.float32)
        (out,) = session.run(["output"], {"input": image, "audio": audio})
        assert out.shape == (batch, 3, CROP, CROP)
        assert out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0


def test_lookahead_matches_the_contract() -> None:
    assert bm.BUILTIN_MODELS["parametric-mouth"].lookahead_frames == 1
    assert bm.BUILTIN_MODELS["synthetic-unet"].lookahead_frames == 13


def test_silence_returns_the_reference_crop(mouth: ort.InferenceSession) -> None:
    crop = _face_crop()
    out = _speak(mouth, crop, _audio([-4.0]))
    np.testing.assert_allclose(out[0], crop, atol=1 / 255)


def test_loud_speech_opens_a_dark_mouth_and_leaves_the_rest(mouth: ort.InferenceSession) -> None:
    crop = _face_crop()
    out = _speak(mouth, crop, _audio([3.0]))[0]
    assert _mouth_change(out, crop) > 0.05
    assert out[(slice(None), *INTERIOR)].mean() < crop[(slice(None), *INTERIOR)].mean() - 0.2
    np.testing.assert_allclose(out[:, FAR_ROWS], crop[:, FAR_ROWS], atol=1 / 255)
    left, right = out[:, :, :20], out[:, :, -20:]
    np.testing.assert_allclose(left, crop[:, :, :20], atol=1 / 255)
    np.testing.assert_allclose(right, crop[:, :, -20:], atol=1 / 255)


def test_opening_grows_with_energy(mouth: ort.InferenceSession) -> None:
    crop = _face_crop()
    out = _speak(mouth, crop, _audio([-4.0, -1.0, 1.0, 3.0]))
    changes = [_mouth_change(item, crop) for item in out]
    assert changes[0] < 1e-3
    assert all(later > earlier + 0.005 for earlier, later in zip(changes, changes[1:])), changes


def test_opening_is_the_graphs_curve(mouth: ort.InferenceSession) -> None:
    """The lips bench and tests read `opening(energy)`: where it is 0 the graph leaves the mouth shut,
    where it saturates the graph opens no further, and between, the graph opens wider as it grows."""
    crop = _face_crop()
    energies = [-4.0, -2.5, -1.5, -0.5, 0.5, 1.5, 3.0]
    changes = np.array([_mouth_change(item, crop) for item in _speak(mouth, crop, _audio(energies))])
    expected = opening(np.array(energies))
    assert changes[expected == 0].max() < 1e-3
    assert changes[-1] == pytest.approx(changes[-2], abs=1e-4)  # both fully open
    between = changes[(expected > 0) & (expected < 1)]
    assert (np.diff(between) > 0.002).all() and changes[-1] > between.max() + 0.002, changes


def test_each_batch_item_follows_its_own_audio(mouth: ort.InferenceSession) -> None:
    crop = _face_crop()
    energies = [3.0, -4.0, 0.5]
    batched = _speak(mouth, crop, _audio(energies))
    for item, energy in zip(batched, energies):
        np.testing.assert_allclose(item, _speak(mouth, crop, _audio([energy]))[0], atol=1e-5)


def test_only_the_centre_frame_opens_the_mouth(mouth: ort.InferenceSession) -> None:
    """Frame i opens by its own energy: the zero point for measuring A/V offset."""
    crop = _face_crop()
    silent_centre = _speak(mouth, crop, _audio([-4.0], other_energy=3.0))
    np.testing.assert_allclose(silent_centre[0], crop, atol=1 / 255)
    loud_centre = _speak(mouth, crop, _audio([3.0], other_energy=-4.0))
    np.testing.assert_allclose(loud_centre, _speak(mouth, crop, _audio([3.0])), atol=1e-6)


def test_unet_has_synctalk_size(unet_path: Path) -> None:
    model = onnx.load(str(unet_path))
    parameters = sum(int(np.prod(tensor.dims)) for tensor in model.graph.initializer)
    assert 11e6 <= parameters <= 12e6
    ops = {node.op_type for node in model.graph.node}
    assert {"Conv", "Clip", "Resize", "Concat", "Sigmoid"} <= ops
    groups = [attr.i for node in model.graph.node for attr in node.attribute if attr.name == "group"]
    assert max(groups) > 1  # depthwise convolutions


def test_unet_output_is_unsaturated_and_depends_on_audio(unet_path: Path) -> None:
    session = _session(unet_path)
    rng = np.random.default_rng(2)
    image = rng.random((1, 6, CROP, CROP), dtype=np.float32)
    first, second = (rng.uniform(-4.0, 4.0, (1, 32, 16, 16)).astype(np.float32) for _ in range(2))
    (out,) = session.run(None, {"input": image, "audio": first})
    (other,) = session.run(None, {"input": image, "audio": second})
    assert out.std() > 0.01
    assert ((out > 0.01) & (out < 0.99)).mean() > 0.9
    assert np.abs(out - other).mean() > 1e-3


def test_unet_weights_are_reproducible(tmp_path: Path, unet_path: Path) -> None:
    again = bm.ensure_builtin("synthetic-unet", tmp_path)
    assert again.read_bytes() == unet_path.read_bytes()


def test_ensure_builtin_builds_once_atomically(tmp_path: Path) -> None:
    path = bm.ensure_builtin("parametric-mouth", tmp_path)
    assert path == tmp_path / "models" / "parametric-mouth-v1.onnx"
    built_at = path.stat().st_mtime_ns
    assert bm.ensure_builtin("parametric-mouth", tmp_path) == path
    assert path.stat().st_mtime_ns == built_at
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_default_cache_is_the_lipstream_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIPSTREAM_CACHE_DIR", str(tmp_path))
    assert bm.ensure_builtin("parametric-mouth") == tmp_path / "models" / "parametric-mouth-v1.onnx"


def test_unknown_name_raises_with_known_names(tmp_path: Path) -> None:
    with pytest.raises(KeyError) as info:
        bm.ensure_builtin("wav2lip", tmp_path)
    message = info.value.args[0]
    assert "wav2lip" in message and "parametric-mouth" in message and "synthetic-unet" in message
    assert not (tmp_path / "models").exists()


def _cli(argv: list[str]) -> int:
    """`lipstream ARGV` as the console script runs it."""
    return main(argv)


def test_cli_build_and_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LIPSTREAM_CACHE_DIR", str(tmp_path / "cache"))
    assert _cli(["models", "list"]) == 0
    listed = capsys.readouterr().out
    assert "parametric-mouth" in listed and "synthetic-unet" in listed and "built" not in listed

    assert _cli(["models", "build", "parametric-mouth"]) == 0
    built = Path(capsys.readouterr().out.strip())
    assert built == tmp_path / "cache" / "models" / "parametric-mouth-v1.onnx" and built.is_file()
    assert _cli(["models", "list"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["parametric-mouth"][1:3] == ["1", "built"]
    assert rows["synthetic-unet"][1:3] == ["13", "missing"]

    assert _cli(["models", "build", "parametric-mouth", "--out", str(tmp_path / "out")]) == 0
    assert Path(capsys.readouterr().out.strip()) == tmp_path / "out" / "parametric-mouth-v1.onnx"

    assert _cli(["models", "build", "nope"]) == 2
    assert "unknown built-in model 'nope'" in capsys.readouterr().err
