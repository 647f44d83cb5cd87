"""Tests of genbench.data on small files written in the real formats (IDX, CIFAR pickles, PNG/JPEG).

No test touches real data or the network: HOME, $GENBENCH_DATA and the system dataset folder
are pointed at empty temporary folders, and downloading is off (or faked).
"""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fileformats import (  # noqa: E402  (tests/ is on sys.path under pytest)
    CIFAR_CLASSES,
    make_cifar,
    make_cifar_tar,
    make_idx_dataset,
    write_idx,
)
from genbench.config import TOY_SETS, DataConfig
from genbench.data import (
    SOURCES,
    BatchSampler,
    InMemoryData,
    default_std,
    describe_datasets,
    load_dataset,
    mode_centers,
    sample_toy,
    sources,
    to_model_range,
    to_uint8,
)
from genbench.data.transforms import hflip_mask, random_hflip
from genbench.errors import GenbenchError


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test sees an empty HOME, $GENBENCH_DATA and system dataset folder."""
    home, env, system = tmp_path / "home", tmp_path / "gbdata", tmp_path / "system"
    for d in (home, env, system):
        d.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GENBENCH_DATA", str(env))
    monkeypatch.setattr(sources, "SYSTEM_DATASETS_DIR", system)
    return {"home": home, "env": env, "system": system}


def one_line_error(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


# ----------------------------------------------------------------------------- transforms


def test_normalisation_maps_ends_and_round_trips():
    levels = torch.arange(256, dtype=torch.uint8)
    x = to_model_range(levels)
    assert x.dtype == torch.float32
    assert x[0].item() == -1.0 and x[255].item() == 1.0
    assert torch.equal(to_uint8(x), levels)
    assert to_uint8(torch.tensor([-3.0, 0.0, 7.0])).tolist() == [0, 128, 255]
    with pytest.raises(TypeError):
        to_model_range(x)


def test_hflip_flips_exactly_the_chosen_items():
    x = torch.arange(64 * 2 * 3 * 5, dtype=torch.uint8).view(64, 2, 3, 5)
    gen = torch.Generator().manual_seed(3)
    mask = hflip_mask(64, torch.Generator().manual_seed(3))
    out = random_hflip(x, gen)
    assert 0 < mask.sum() < 64
    assert torch.equal(out[mask], x[mask].flip(-1))
    assert torch.equal(out[~mask], x[~mask])


def test_batch_images_and_points():
    x = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    data = InMemoryData(x, torch.arange(10), "image", "t", None, "mem")
    assert len(data) == 10 and data.shape == (3, 4, 4) and len(data.fingerprint) == 64
    idx = torch.tensor([3, 1, 7])
    xb, yb = data.batch(idx)
    assert xb.dtype == torch.float32 and torch.equal(xb, to_model_range(x[idx]))
    assert yb.tolist() == [3, 1, 7]
    xf, _ = data.batch(idx, hflip=True, generator=torch.Generator().manual_seed(0))
    mask = hflip_mask(3, torch.Generator().manual_seed(0))
    assert torch.equal(xf, to_model_range(torch.where(mask.view(-1, 1, 1, 1), x[idx].flip(-1), x[idx])))
    pts = InMemoryData(torch.randn(5, 2), None, "points", "p", None, "mem")
    xp, yp = pts.batch(torch.tensor([0, 4]), hflip=True, generator=torch.Generator())
    assert torch.equal(xp, pts.x[[0, 4]]) and yp is None and pts.shape == (2,)


# ----------------------------------------------------------------------------- sampler


def test_sampler_covers_each_index_once_per_epoch():
    s = BatchSampler(10, 3, seed=1)
    assert s.batches_per_epoch == 3
    for epoch in range(3):
        batches = [s.next() for _ in range(3)]
        assert s.epoch == epoch
        seen = torch.cat(batches)
        assert len(seen) == 9 and len(seen.unique()) == 9   # one index dropped, none repeated
        assert all(b.dtype == torch.int64 and len(b) == 3 for b in batches)


def _run(s: BatchSampler, steps: int) -> list[torch.Tensor]:
    out = []
    for _ in range(steps):
        idx = s.next()
        out.append(torch.cat([idx, hflip_mask(4, s.generator).long()]))   # flips use the same generator
    return out


def test_sampler_resume_is_bitwise_identical(tmp_path):
    full = _run(BatchSampler(11, 4, seed=7), 25)
    first = BatchSampler(11, 4, seed=7)
    part = _run(first, 9)
    torch.save(first.state_dict(), tmp_path / "s.pt")
    resumed = BatchSampler(11, 4, seed=123)   # the seed comes from the state
    resumed.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert (resumed.epoch, resumed.position) == (first.epoch, first.position)
    rest = _run(resumed, 16)
    assert all(torch.equal(a, b) for a, b in zip(full, part + rest, strict=True))


def test_sampler_rejects_bad_sizes():
    with pytest.raises(GenbenchError) as e:
        BatchSampler(5, 8, seed=0)
    assert "larger than the dataset" in one_line_error(e)
    with pytest.raises(GenbenchError):
        BatchSampler(20, 4, seed=0).load_state_dict(BatchSampler(21, 4, seed=0).state_dict())


# ----------------------------------------------------------------------------- IDX (MNIST, Fashion-MNIST)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_round_trip(tmp_path, gz):
    arrays = make_idx_dataset(tmp_path / "mnist", gz=gz)
    data = load_dataset(DataConfig(name="mnist", root=str(tmp_path / "mnist"), download=False))
    images, labels = arrays["train"]
    assert data.x.shape == (30, 1, 28, 28) and data.x.dtype == torch.uint8
    assert np.array_equal(data.x[:, 0].numpy(), images)
    assert data.y.dtype == torch.int64 and data.y.tolist() == labels.tolist()
    assert data.class_names == [str(d) for d in range(10)] and data.kind == "image"
    assert not data.verified   # generated content, not the official release
    test = load_dataset(DataConfig(name="mnist", root=str(tmp_path / "mnist"), split="test", download=False))
    assert len(test) == 12 and np.array_equal(test.x[:, 0].numpy(), arrays["test"][0])


def test_class_subset_split_and_limit(tmp_path, isolated):
    make_idx_dataset(isolated["env"] / "fashion_mnist")   # found through $GENBENCH_DATA/<name>
    cfg = DataConfig(name="fashion_mnist", classes=["sneaker", 0], download=False)
    data = load_dataset(cfg)
    assert data.source == str(isolated["env"] / "fashion_mnist")
    assert set(data.y.tolist()) == {0, 7} and len(data) == 6   # labels keep official indices
    assert data.class_names[7] == "Sneaker"
    limited = load_dataset(cfg.model_copy(update={"limit": 4}))
    assert torch.equal(limited.x, data.x[:4]) and limited.fingerprint != data.fingerprint
    assert load_dataset(cfg).fingerprint == data.fingerprint
    test = load_dataset(cfg.model_copy(update={"split": "test"}))
    assert len(test) == 3 and set(test.y.tolist()) == {0, 7}


def test_unknown_class_name_lists_valid_names(tmp_path):
    make_idx_dataset(tmp_path / "f")
    with pytest.raises(GenbenchError) as e:
        load_dataset(DataConfig(name="fashion_mnist", root=str(tmp_path / "f"), classes=["automobile"],
                                download=False))
    msg = one_line_error(e)
    assert "automobile" in msg and "Ankle boot" in msg and "T-shirt/top" in msg


def _broken_dataset(folder: Path, how: str) -> Path:
    make_idx_dataset(folder)
    labels = folder / "train-labels-idx1-ubyte.gz"
    images = folder / "train-images-idx3-ubyte.gz"
    if how == "magic":
        images.write_bytes(labels.read_bytes())
        return images
    if how == "truncated":
        images.write_bytes(images.read_bytes()[:500])
        return images
    if how == "size":   # header promises 30 images, data holds 29
        raw = gzip.decompress(images.read_bytes())
        images.write_bytes(gzip.compress(raw[:-784]))
        return images
    # count: 29 valid labels for 30 images
    write_idx(folder / "train-labels-idx1-ubyte", np.zeros(29, np.uint8), 0x801)
    return labels


@pytest.mark.parametrize("how,words", [
    ("magic", "magic number"),
    ("truncated", "truncated or corrupt gzip"),
    ("size", "needs"),
    ("count", "30 images but"),
])
def test_bad_idx_files_are_named(tmp_path, how, words):
    bad = _broken_dataset(tmp_path / "m", how)
    with pytest.raises(GenbenchError) as e:
        load_dataset(DataConfig(name="mnist", root=str(tmp_path / "m"), download=False))
    msg = one_line_error(e)
    assert str(bad) in msg and words in msg and "download it again" in msg


def test_missing_dataset_names_every_searched_place(tmp_path, isolated):
    with pytest.raises(GenbenchError) as e:
        load_dataset(DataConfig(name="fashion_mnist", root=str(tmp_path / "nowhere"), download=False))
    msg = one_line_error(e)
    for place in (tmp_path / "nowhere", isolated["env"] / "fashion_mnist", isolated["env"],
                  isolated["system"] / "fashion-mnist", isolated["home"] / ".cache" / "genbench" / "fashion_mnist"):
        assert str(place) in msg
    assert "apt-get install dataset-fashion-mnist" in msg


def test_failed_download_explains_how_to_get(tmp_path, isolated, monkeypatch):
    import torchvision.datasets.utils as tvu

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(tvu, "download_url", offline)
    with pytest.raises(GenbenchError) as e:
        load_dataset(DataConfig(name="fashion_mnist", split="test"))
    msg = one_line_error(e)
    assert "network is unreachable" in msg and str(isolated["env"]) in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "t10k-images-idx3-ubyte.gz" in msg


def test_download_goes_to_genbench_data(tmp_path, isolated, monkeypatch):
    import torchvision.datasets.utils as tvu

    staged = tmp_path / "staged"
    make_idx_dataset(staged)
    calls = []

    def fake_download(url, root, filename, md5):
        calls.append((url, md5))
        Path(root, filename).write_bytes((staged / filename).read_bytes())

    monkeypatch.setattr(tvu, "download_url", fake_download)
    data = load_dataset(DataConfig(name="mnist", split="test"))
    assert len(data) == 12 and data.source == str(isolated["env"] / "mnist")
    assert [u.rsplit("/", 1)[-1] for u, _ in calls] == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert calls[0][1] == "9fb629c4189551a2d022fa330f9573f3"


def test_locate_and_describe(tmp_path, isolated):
    make_idx_dataset(isolated["home"] / ".cache" / "genbench" / "mnist")
    make_cifar(tmp_path / "c")
    make_cifar_tar(tmp_path / "c", isolated["env"] / "cifar-10-python.tar.gz")
    places = SOURCES["mnist"].locate()
    assert places[-1] == (isolated["home"] / ".cache" / "genbench" / "mnist", True)
    assert not any(found for _, found in places[:-1])
    rows = {r["name"]: r for r in describe_datasets()}
    assert rows["mnist"]["found"] and rows["mnist"]["where"].endswith("mnist")
    assert rows["cifar10"]["where"] == str(isolated["env"] / "cifar-10-python.tar.gz")
    assert not rows["fashion_mnist"]["found"] and "apt-get" in rows["fashion_mnist"]["how_to_get"]
    assert str(isolated["system"] / "fashion-mnist") in rows["fashion_mnist"]["searched"]


REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (REAL_FASHION / "t10k-images-idx3-ubyte.gz").is_file(), reason="Debian package absent")
def test_real_fashion_mnist_test_split():
    data = load_dataset(DataConfig(name="fashion_mnist", root=str(REAL_FASHION), split="test", limit=100,
                                   download=False))
    assert data.x.shape == (100, 1, 28, 28) and data.y.shape == (100,)
    assert data.verified and 0 < data.x.float().mean() < 255


# ----------------------------------------------------------------------------- CIFAR-10


def test_cifar_folder_parent_and_tar_agree(tmp_path):
    arrays = make_cifar(tmp_path / "c")
    tar = make_cifar_tar(tmp_path / "c", tmp_path / "cifar-10-python.tar.gz")
    loaded = [load_dataset(DataConfig(name="cifar10", root=str(r), download=False))
              for r in (tmp_path / "c", tmp_path / "c" / "cifar-10-batches-py", tar)]
    data = loaded[0]
    flat, labels = arrays["train"]
    assert data.x.shape == (20, 3, 32, 32) and data.x.dtype == torch.uint8
    # channel-major layout: data[i, c*1024 + row*32 + col]
    assert data.x[5, 2, 7, 30].item() == flat[5, 2 * 1024 + 7 * 32 + 30]
    assert np.array_equal(data.x.reshape(20, -1).numpy(), flat)
    assert data.y.tolist() == labels.tolist() and data.class_names == CIFAR_CLASSES
    assert not data.verified
    assert len({d.fingerprint for d in loaded}) == 1
    test = load_dataset(DataConfig(name="cifar10", root=str(tar), split="test", download=False))
    assert len(test) == 5 and np.array_equal(test.x.reshape(5, -1).numpy(), arrays["test"][0])


def test_cifar_class_subset_by_name(tmp_path):
    make_cifar(tmp_path / "c")
    data = load_dataset(DataConfig(name="cifar10", root=str(tmp_path / "c"), classes=["Automobile"],
                                   download=False))
    assert len(data) > 0 and set(data.y.tolist()) == {1}


class Evil:
    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


def test_malicious_pickle_is_refused(tmp_path):
    make_cifar(tmp_path / "c")
    target = tmp_path / "pwned"
    batch = tmp_path / "c" / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(pickle.dumps({b"data": Evil(target), b"labels": [0]}, protocol=2))
    with pytest.raises(GenbenchError) as e:
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path / "c"), download=False))
    msg = one_line_error(e)
    assert msg.startswith("refusing to load") and "system" in msg and "data_batch_3" in msg
    assert not target.exists()


# ----------------------------------------------------------------------------- image folders


def test_image_folder_with_classes(tmp_path):
    root = tmp_path / "imgs"
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(root / "cats" / "a.png")
    half = np.zeros((8, 16, 3), np.uint8)
    half[:, 8:] = 200                                   # left black, right grey
    Image.fromarray(half).save(root / "dogs" / "b.png")
    Image.new("RGB", (32, 16), (250, 0, 0)).save(root / "dogs" / "c.JPG", quality=95)
    (root / "dogs" / "notes.txt").write_text("not an image")
    data = load_dataset(DataConfig(name="folder", root=str(root), img_size=8, channels=3))
    assert data.x.shape == (3, 3, 8, 8) and data.x.dtype == torch.uint8
    assert data.class_names == ["cats", "dogs"] and data.y.tolist() == [0, 1, 1]
    assert data.x[0, :, 0, 0].tolist() == [10, 20, 30]
    assert (data.x[1, :, :, :4] == 0).all() and (data.x[1, :, :, 4:] == 200).all()   # centre crop
    assert abs(int(data.x[2, 0].float().mean()) - 250) <= 3 and data.x[2, 1].float().mean() < 5
    grey = load_dataset(DataConfig(name="folder", root=str(root), img_size=4, channels=1))
    assert grey.x.shape == (3, 1, 4, 4)


@pytest.mark.parametrize("content,words", [({}, "no files"), ({"a.txt": b"hello"}, "non-image")])
def test_folder_without_images(tmp_path, content, words):
    root = tmp_path / "f"
    root.mkdir()
    for name, data in content.items():
        (root / name).write_bytes(data)
    with pytest.raises(GenbenchError) as e:
        load_dataset(DataConfig(name="folder", root=str(root), img_size=8))
    assert words in one_line_error(e)


def test_unreadable_image_is_named(tmp_path):
    root = tmp_path / "f"
    root.mkdir()
    Image.new("L", (8, 8)).save(root / "good.png")
    (root / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(GenbenchError) as e:
        load_dataset(DataConfig(name="folder", root=str(root), img_size=8))
    assert str(root / "bad.png") in one_line_error(e)


# ----------------------------------------------------------------------------- 2-D mixtures


def test_toy_mode_centers():
    ring = mode_centers("ring")
    assert ring.shape == (8, 2) and torch.allclose(ring.norm(dim=1), torch.full((8,), 2.0))
    grid = mode_centers("grid")
    assert grid.shape == (25, 2) and set(grid[:, 0].tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}
    assert (default_std("ring"), default_std("grid")) == (0.02, 0.05)


@pytest.mark.parametrize("name", TOY_SETS)
def test_toy_samples_have_right_means_std_and_counts(name):
    n = 50_000
    x, y = sample_toy(name, n, generator=torch.Generator().manual_seed(0))
    centers, std = mode_centers(name), default_std(name)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    counts = torch.bincount(y, minlength=len(centers)).float()
    expected = n / len(centers)
    assert ((counts - expected).abs() < 5 * expected**0.5).all()   # 5 sigma of a binomial count
    resid = x - centers[y]
    assert resid.mean(0).abs().max() < 0.01 * std * 10
    assert torch.allclose(resid.std(0), torch.full((2,), std), rtol=0.03)


def test_toy_training_set_is_fixed():
    cfg = DataConfig(name="grid", n_points=1000)
    a, b = load_dataset(cfg), load_dataset(cfg)
    assert a.kind == "points" and a.x.shape == (1000, 2) and a.fingerprint == b.fingerprint
    wide = load_dataset(cfg.model_copy(update={"std": 0.5}))
    assert wide.fingerprint != a.fingerprint
    assert set(load_dataset(cfg.model_copy(update={"classes": [3]})).y.tolist()) == {3}
