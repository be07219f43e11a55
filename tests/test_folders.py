"""A user's own images (``--data DIR``): both layouts give the bundled pixels back, and every bad folder one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pcrobust.errors import PcrobustError
from pcrobust_datasets.imagenet import foolbox_data_dir, load_foolbox_imagenet, read_imagenet_folder, wordnet_ids
from pcrobust_datasets.mnist import load_mnist_5k, read_digit_folder

DIGITS = 30


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    data = load_mnist_5k("test")
    return data.images[:DIGITS], data.labels[:DIGITS]


def write_digits(root: Path, images: torch.Tensor, labels: torch.Tensor, flat: bool = False) -> Path:
    """The digits as 8-bit PNGs, in class folders or flat beside labels.txt."""
    lines = []
    for number, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root if flat else root / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (image[0].numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{number:03d}.png")
        lines.append(f"{number:03d}.png {int(label)}")
    if flat:
        (root / "labels.txt").write_text("\n".join(lines) + "\n")
    return root


def test_digit_folders_in_either_layout_give_the_bundled_pixels_back(digits, tmp_path):
    images, labels = digits
    for flat in (False, True):
        data = read_digit_folder(write_digits(tmp_path / str(flat), images, labels, flat))
        order = torch.arange(DIGITS) if flat else labels.argsort(stable=True)
        assert data.num_classes == 10 and data.split == "folder" and len(data) == DIGITS
        assert torch.equal(data.labels, labels[order])
        torch.testing.assert_close(data.images, images[order], atol=0.5 / 255, rtol=0)


def test_imagenet_folders_named_by_wordnet_id_match_the_bundled_images(tmp_path):
    bundled = load_foolbox_imagenet("test")
    paths = sorted(foolbox_data_dir().glob("imagenet_*_*.jpg"))[:4]
    for path in paths:
        label = int(path.stem.rsplit("_", 1)[1])
        (tmp_path / wordnet_ids()[label]).mkdir(exist_ok=True)
        shutil.copy(path, tmp_path / wordnet_ids()[label] / path.name)
    data = read_imagenet_folder(tmp_path)
    assert len(wordnet_ids()) == 1000 and wordnet_ids()[0] == "n01440764"
    assert list(wordnet_ids()) == sorted(wordnet_ids())
    by_name = {p.name: i for i, p in enumerate(sorted(foolbox_data_dir().glob("imagenet_*_*.jpg")))}
    order = sorted(paths, key=lambda p: (wordnet_ids()[int(p.stem.rsplit("_", 1)[1])], p.name))
    expected = [by_name[p.name] for p in order]
    assert torch.equal(data.labels, bundled.labels[expected])
    assert torch.equal(data.images, bundled.images[expected])


def _bad(root: Path, case: str, digits: tuple[torch.Tensor, torch.Tensor]) -> Path:
    images, labels = digits
    if case == "empty":
        root.mkdir()
    elif case == "loose":
        write_digits(root, images[:2], labels[:2], flat=True).joinpath("labels.txt").unlink()
    elif case == "unknown class":
        write_digits(root, images[:2], labels[:2])
        (root / "eleven").mkdir()
    elif case == "truncated":
        write_digits(root, images[:2], labels[:2])
        victim = next(root.glob("*/*.png"))
        victim.write_bytes(victim.read_bytes()[:60])
    elif case == "not an image":
        write_digits(root, images[:2], labels[:2])
        (root / "5").mkdir(exist_ok=True)
        (root / "5" / "notes.png").write_text("not pixels")
    elif case == "bad line":
        write_digits(root, images[:2], labels[:2], flat=True).joinpath("labels.txt").write_text("000.png\n")
    elif case == "listed but missing":
        write_digits(root, images[:2], labels[:2], flat=True).joinpath("labels.txt").write_text("zzz.png 3\n")
    elif case == "a file":
        root.write_text("")
    return root


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("a file", "is not a folder"),
    ("empty", "holds no images"),
    ("loose", "holds no images in class folders (loose images need a labels.txt)"),
    ("unknown class", "unknown class 'eleven'; classes are named 0, 1, 2, ... or by their index 0..9"),
    ("truncated", "cannot be read (not an image, or truncated)"),
    ("not an image", "notes.png cannot be read (not an image, or truncated)"),
    ("bad line", "labels.txt line 1: expected '<file name> <class>', got '000.png'"),
    ("listed but missing", "labels.txt line 1: "),
])
def test_a_bad_data_folder_is_one_line_and_exit_2(cli, tmp_path, digits, case, message):
    root = _bad(tmp_path / "data", case, digits)
    with pytest.raises(PcrobustError) as caught:
        read_digit_folder(root)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    code, _, err = cli("evaluate", "--plugin", "predify", "--data", str(root), "--quiet", "--out", str(tmp_path / "r"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err
    assert not (tmp_path / "r").exists()


def test_evaluate_data_dir_runs_the_model_on_the_folder(cli, tmp_path, digits):
    root = write_digits(tmp_path / "digits", *digits)
    code, _, err = cli("evaluate", "--plugin", "predify", "--data", str(root), "--timesteps", "1", "--attack", "none",
                       "--noise-sigmas", "", "--quiet", "--out", str(tmp_path / "r"))
    assert code == 0, err
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["plan"]["data"]["path"] == str(root)
    assert results["dataset"]["source"] == f"folder {root}" and results["dataset"]["size"] == DIGITS
    assert results["sections"][0]["series"][0]["n"] == DIGITS
    code, _, err = cli("evaluate", "--plugin", "predify", "--dataset", "nope-like", "--data", str(root), "--quiet",
                       "--out", str(tmp_path / "x"))
    assert code == 2 and "unknown dataset" in err
