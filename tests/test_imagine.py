"""`imagine`: a Cosmos rollout decoded to frames and written as a GIF or a PNG strip, and its command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import one_line_error, pictures
from theworld import TheWorld
from theworld.modeling.imagine import decode_latents, frames_to_uint8, imagine, main
from theworld.testing import TinyCheckpoints

pytestmark = pytest.mark.usefixtures("one_thread", "prompt_cache")


@pytest.fixture(scope="module")
def model(rollout_model: TheWorld) -> TheWorld:
    return rollout_model


@pytest.fixture(scope="module")
def picture_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pictures") / "scene.png"
    pictures(1, offset=5)[0].save(path)
    return path


def test_gif_has_one_frame_per_predicted_step_and_starts_with_the_picture(model: TheWorld, tmp_path: Path) -> None:
    picture = pictures(1, offset=5)[0]
    result = imagine(model, picture, 8, tmp_path / "rollout.gif")
    assert result.path == tmp_path / "rollout.gif" and result.num_frames == 9
    assert result.frames.shape == (9, 64, 64, 3) and result.frames.dtype == np.uint8
    with Image.open(result.path) as gif:
        assert gif.format == "GIF" and gif.size == (64, 64) and getattr(gif, "n_frames", 1) == 9
    # Frame 0 is the VAE's reconstruction of the picture itself (the causal decoder sees latent frame 0 only).
    rollout = model.world_rollout()
    with torch.no_grad():
        own = rollout.encoder(model.processor.world_pixels([picture]))
    reconstruction = frames_to_uint8(decode_latents(rollout, own)[0])
    assert reconstruction.shape == (1, 64, 64, 3)
    assert np.array_equal(result.frames[0], reconstruction[0])
    assert not np.array_equal(result.frames[0], result.frames[-1])  # the prediction moves
    again = imagine(model, picture, 8, tmp_path / "again.gif")
    assert np.array_equal(again.frames, result.frames)  # the model's seed: the same film


def test_png_strip_and_zero_steps(model: TheWorld, tmp_path: Path) -> None:
    strip = imagine(model, pictures(1)[0], 4, tmp_path / "strip.png")
    with Image.open(strip.path) as image:
        assert image.format == "PNG" and image.size == (5 * 64, 64)
        assert np.array_equal(np.asarray(image)[:, 64:128], strip.frames[1])
    still = imagine(model, pictures(1)[0], 0, tmp_path / "still.gif")
    assert still.num_frames == 1
    with Image.open(still.path) as gif:
        assert getattr(gif, "n_frames", 1) == 1


def test_bad_arguments_are_one_line_errors(model: TheWorld, tmp_path: Path) -> None:
    for steps, expected in ((6, "multiple of 4"), (20, "exceeds max_world_steps=16")):
        with pytest.raises(ValueError) as error:
            imagine(model, pictures(1)[0], steps, tmp_path / "x.gif")
        assert f"steps={steps}" in one_line_error(error) and expected in str(error.value)
    with pytest.raises(ValueError) as error:
        imagine(model, pictures(1)[0], 4, tmp_path / "x.jpg")
    assert "x.jpg" in one_line_error(error) and ".gif" in str(error.value)
    with pytest.raises(ValueError) as error:
        imagine(model, tmp_path / "missing.png", 4, tmp_path / "x.gif")
    assert "missing.png" in one_line_error(error)
    assert not list(tmp_path.glob("*.gif")) and not list(tmp_path.glob(".*partial"))


def test_command_line_with_a_saved_model_and_with_a_bare_pipeline(
    model: TheWorld, tiny: TinyCheckpoints, picture_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model.save_pretrained(tmp_path / "model")
    out = tmp_path / "cli.gif"
    assert main([str(picture_file), "--steps", "4", "--out", str(out), "--model", str(tmp_path / "model")]) == 0
    assert capsys.readouterr().out.strip() == f"{out} (5 frames)"
    with Image.open(out) as gif:
        assert getattr(gif, "n_frames", 1) == 5 and gif.size == (64, 64)
    bare = tmp_path / "bare.png"
    argv = [str(picture_file), "--steps", "4", "--out", str(bare), "--cosmos-model", str(tiny.cosmos_pipeline)]
    assert main([*argv, "--size", "32", "--inference-steps", "2", "--guidance", "1"]) == 0
    with Image.open(bare) as strip:
        assert strip.size == (5 * 32, 32)
    with pytest.raises(ValueError) as error:
        main([str(tmp_path / "nope.png"), "--out", str(out), "--model", str(tmp_path / "model")])
    assert "nope.png" in one_line_error(error)
    with pytest.raises(ValueError) as error:
        main([*argv, "--size", "30"])
    assert "--size 30" in one_line_error(error)
