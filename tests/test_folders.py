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
from pcrobust.registry import DatasetEntry
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


def write_masks(root: Path, images: torch.Tensor, labels: torch.Tensor, size: int = 28) -> Path:
    """Each digit's ink (> 0.5) as a mask PNG mirroring :func:`write_digits`' class folders, at ``size`` px."""
    for number, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        ink = Image.fromarray((image[0].numpy() > 0.5).astype(np.uint8) * 255)
        ink.resize((size, size), Image.Resampling.NEAREST).save(folder / f"{number:03d}.png")
    return root


def test_masks_mirror_the_images_and_are_fitted_as_they_are_with_nearest(digits, tmp_path):
    images, labels = digits
    big = torch.nn.functional.interpolate(images, size=(56, 56), mode="nearest")
    root = write_digits(tmp_path / "digits", big, labels)
    masks = write_masks(tmp_path / "masks", images, labels, size=56)
    first = masks / str(int(labels[0])) / "000.png"
    blue = Image.open(first).convert("L").point(lambda v: 1 if v else 0)  # object in faint blue only (grey 0)
    Image.merge("RGB", [Image.new("L", blue.size), Image.new("L", blue.size), blue]).save(first.with_suffix(".bmp"))
    first.unlink()  # the same stem in another format
    data = read_digit_folder(root, masks=masks)
    order = labels.argsort(stable=True)
    assert data.masks is not None and data.masks.shape == (DIGITS, 28, 28) and data.masks.dtype == torch.bool
    assert torch.equal(data.masks, images[order, 0] > 0.5)  # 56 px nearest back to 28 px: the very pixels
    assert data.source == f"folder {root}, masks {masks}"
    assert data.sha256 != read_digit_folder(root).sha256 and read_digit_folder(root).masks is None


@pytest.mark.parametrize("case, message", [
    ("no folder", "masks folder"),
    ("missing", "the mask of image"),
    ("wrong size", "is 20×20 but its image is 28×28"),
    ("unreadable", "cannot be read (not an image, or truncated)"),
])
def test_a_bad_masks_folder_is_one_line_and_exit_2(cli, tmp_path, digits, case, message):
    images, labels = digits[0][:4], digits[1][:4]
    root = write_digits(tmp_path / "digits", images, labels)
    masks = write_masks(tmp_path / "masks", images, labels)
    first = masks / str(int(labels[0])) / "000.png"
    if case == "no folder":
        masks = tmp_path / "nowhere"
    elif case == "missing":
        first.unlink()
    elif case == "wrong size":
        Image.new("L", (20, 20)).save(first)
    else:
        first.write_bytes(b"not a png")
    with pytest.raises(PcrobustError) as caught:
        read_digit_folder(root, masks=masks)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    code, _, err = cli("evaluate", "--plugin", "predify", "--data", str(root), "--masks", str(masks), "--quiet",
                       "--out", str(tmp_path / "r"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err


def test_masks_need_a_data_folder(cli, tmp_path):
    code, _, err = cli("evaluate", "--plugin", "predify", "--masks", str(tmp_path), "--quiet", "--out",
                       str(tmp_path / "r"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "needs --data" in err


def test_a_folder_reader_without_masks_refuses_a_masks_folder(tmp_path, digits):
    root = write_digits(tmp_path / "digits", *digits)
    entry = DatasetEntry(name="plain", description="", splits=("test",), load=load_mnist_5k,
                         read_folder=lambda folder: read_digit_folder(folder))
    assert len(entry.read(root)) == DIGITS
    with pytest.raises(PcrobustError, match="dataset 'plain' reads no folder of masks"):
        entry.read(root, tmp_path)
