"""The sample grid shows seeded picks of each set and the files' own pixels."""

import numpy as np
import pytest
from PIL import Image

from tomosynth.errors import DataError
from tomosynth.plots.samples import pick_images, plot_sample_grid


def _folder(tmp_path, name, n, size, seed):
    folder = tmp_path / name
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(
            folder / f"img_{i:03d}.png"
        )
    return folder


def test_pick_images_reads_the_chosen_files(tmp_path):
    folder = _folder(tmp_path, "real", 10, 16, 0)
    names, imgs = pick_images(folder, 4, seed=1)
    assert len(names) == 4 and names == sorted(set(names))
    for name, img in zip(names, imgs, strict=True):
        np.testing.assert_array_equal(img, np.asarray(Image.open(folder / name)))
    assert pick_images(folder, 4, seed=1)[0] == names
    assert pick_images(folder, 4, seed=2)[0] != names
    assert len(pick_images(folder, 40, seed=1)[0]) == 10  # never more than the set holds


def test_sample_grid_writes_one_row_per_set(tmp_path):
    sets = {
        "real 32 px": _folder(tmp_path, "a", 6, 32, 0),
        "GAN 32 px": _folder(tmp_path, "b", 3, 32, 1),
    }
    shown = plot_sample_grid(sets, tmp_path / "grid.png", tmp_path / "grid.pdf", n=4)
    assert list(shown) == list(sets)
    assert len(shown["real 32 px"]) == 4 and len(shown["GAN 32 px"]) == 3
    assert (tmp_path / "grid.png").stat().st_size > 0 and (tmp_path / "grid.pdf").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        plot_sample_grid({"x": tmp_path / "empty"}, tmp_path / "g2.png")
