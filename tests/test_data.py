import gzip
import json
import shutil
from pathlib import Path

import pytest
import torch

from lenet_core import catalog, data, sources
from lenet_core.paths import mirror_dir

@pytest.fixture
def fresh_data_dir(tmp_path, monkeypatch):
    """An empty cache folder; caches of the real one are cleared on both sides."""
    monkeypatch.setenv("LENET_DATA_DIR", str(tmp_path / "data"))
    data.load_uint8.cache_clear()
    data.splits.cache_clear()
    yield tmp_path / "data"
    data.load_uint8.cache_clear()
    data.splits.cache_clear()


@pytest.fixture
def mirror() -> Path:
    """The offline mirror `make data` prepared from ($DATA_MIRROR)."""
    folder = mirror_dir()
    if folder is None:
        pytest.skip("needs the offline dataset mirror ($DATA_MIRROR)")
    return folder


@pytest.fixture
def mirror_copy(mnist_ready, mirror, tmp_path) -> Path:
    """A private mirror holding a copy of the MNIST files the real cache was made from."""
    copy = tmp_path / "mirror"
    shutil.copytree(mirror / "mnist", copy / "mnist")
    return copy


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(ValueError, match="unknown dataset 'svhn'; valid: mnist, fashion_mnist, cifar10"):
        data.check_name("svhn")


def test_idx_parsing():
    raw = bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3]) + bytes(range(6))
    assert sources._parse_idx(raw).tolist() == [[[0, 1, 2]], [[3, 4, 5]]]
    with pytest.raises(ValueError):
        sources._parse_idx(b"\x00\x00\x0d\x01")


@pytest.mark.usefixtures("mnist_ready")
def test_prepared_mnist_is_verified_and_described():
    prov = data.provenance("mnist")
    assert prov["files"] == catalog.IDX_SHA256["mnist"]  # the official checksums
    assert prov["lossy"] is False and (prov["n_train"], prov["n_test"]) == (60_000, 10_000)
    raw = data.load_uint8("mnist")
    assert raw["train_x"].dtype == torch.uint8 and raw["train_x"].shape == (60_000, 1, 28, 28)


def test_prepared_cifar10_copies_are_tagged():
    official, jpeg = data.provenance("cifar10"), data.provenance("cifar10", "jpeg")
    assert official["lossy"] is False and jpeg["lossy"] is True
    assert jpeg["files"] == {catalog.CIFAR_JPEG_ARCHIVE: catalog.CIFAR_JPEG_SHA256}
    assert official["content_sha256"] != jpeg["content_sha256"]
    for prov in (official, jpeg):
        assert prov["shape"] == [3, 32, 32] and (prov["n_train"], prov["n_test"]) == (50_000, 10_000)


def test_validation_split_is_fixed_disjoint_and_ten_percent():
    torch.manual_seed(123)  # the global seed must not matter
    train_a, val_a = data.split_indices(60_000)
    torch.manual_seed(456)
    train_b, val_b = data.split_indices(60_000)
    assert torch.equal(train_a, train_b) and torch.equal(val_a, val_b)
    assert len(val_a) == 6_000 and len(train_a) == 54_000
    assert len(set(train_a.tolist()) | set(val_a.tolist())) == 60_000


@pytest.mark.usefixtures("mnist_ready")
def test_device_splits_are_padded_and_normalized_on_the_training_part():
    s = data.splits("mnist")
    assert s.train_x.shape == (54_000, 1, 32, 32) and s.val_x.shape == (6_000, 1, 32, 32)
    assert s.test_x.shape == (10_000, 1, 32, 32) and s.train_x.dtype == torch.float32
    inner = s.train_x[:, :, 2:30, 2:30]  # statistics were taken on the original 28x28
    assert inner.mean().item() == pytest.approx(0, abs=1e-3)
    assert inner.std().item() == pytest.approx(1, abs=1e-3)
    assert torch.allclose(s.train_x[:, :, 0, :], s.background.view(1, 1, 1))  # black border


@pytest.mark.usefixtures("mnist_ready")
def test_raw_splits_are_the_same_images_in_pixel_values():
    s, raw = data.splits("mnist"), data.splits("mnist", normalize=False)
    assert raw.train_x.min().item() == 0 and raw.train_x.max().item() == 1
    assert torch.allclose(raw.val_x[:64], s.val_x[:64] * s.std.view(1, -1, 1, 1) + s.mean.view(1, -1, 1, 1),
                          atol=1e-5)
    assert torch.equal(raw.test_y, s.test_y)
    assert torch.equal(raw.background, torch.zeros(1, 1, 1, 1))  # padding and shifts still fill with black


def test_import_from_a_mirror_matches_the_official_checksums(mnist_ready, mirror_copy, fresh_data_dir):
    prov = data.prepare("mnist", mirror=mirror_copy)
    assert prov["source"] == "mirror" and prov["content_sha256"] == mnist_ready["content_sha256"]


def test_a_corrupted_file_is_detected_and_nothing_is_cached(mirror_copy, fresh_data_dir):
    mirror = mirror_copy
    target = mirror / "mnist" / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(target.read_bytes()))
    content[100] ^= 1  # one flipped bit
    target.write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(data.DataError) as err:
        data.prepare("mnist", mirror=mirror)
    message = str(err.value)
    assert "MNIST" in message and "t10k-labels-idx1-ubyte" in message and "corrupted" in message
    assert "python -m lenet_core data prepare mnist" in message
    assert not fresh_data_dir.exists() or not any(fresh_data_dir.iterdir())


def test_missing_data_names_where_it_looked_and_the_fix(tmp_path, fresh_data_dir):
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataError, match=r"Fashion-MNIST.*looked in .*empty.*data prepare fashion_mnist"):
        data.prepare("fashion_mnist", mirror=tmp_path / "empty")
    with pytest.raises(data.DataError, match="not prepared.*data prepare cifar10"):
        data.provenance("cifar10")


def test_a_corrupted_cache_is_detected(mirror_copy, fresh_data_dir):
    data.prepare("mnist", mirror=mirror_copy)
    cache = fresh_data_dir / "mnist.pt"
    raw = torch.load(cache, weights_only=True)
    raw["test_y"][0] = (raw["test_y"][0] + 1) % 10
    torch.save(raw, cache)
    with pytest.raises(data.DataError, match="cache .* is corrupted.*--force"):
        data.load_uint8("mnist")


# ---------------------------------------------------------------- CIFAR-10: official files, JPEG copy by name

def _cifar_mirror(mirror: Path, target: Path, corrupt: str | None = None) -> Path:
    """A private mirror of the official CIFAR-10 files (links to the real ones; `corrupt` a copy
    with one flipped byte) beside a link to the JPEG copy."""
    folder = target / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for source in (mirror / "cifar-10-batches-py").iterdir():
        if source.name == corrupt:
            content = bytearray(source.read_bytes())
            content[len(content) // 2] ^= 1
            (folder / source.name).write_bytes(bytes(content))
        else:
            (folder / source.name).symlink_to(source)
    (target / "cifar10-jpeg").symlink_to(mirror / "cifar10-jpeg")
    return target


def test_cifar10_comes_from_the_official_files_when_the_mirror_also_holds_the_jpeg_copy(mirror, tmp_path,
                                                                                      fresh_data_dir):
    import torchvision

    both = _cifar_mirror(mirror, tmp_path / "both")
    prov = data.prepare("cifar10", mirror=both)
    cls = torchvision.datasets.CIFAR10
    official = {f"{name} (md5)": md5 for name, md5 in cls.train_list + cls.test_list}
    official[f"{cls.meta['filename']} (md5)"] = cls.meta["md5"]
    assert prov["lossy"] is False and prov["copy_name"] == "official" and prov["files"] == official
    assert prov["location"] == "both/cifar-10-batches-py"  # the mirror's name, not this machine's path
    assert str(tmp_path) not in json.dumps(prov)
    assert (prov["n_train"], prov["n_test"], prov["shape"]) == (50_000, 10_000, [3, 32, 32])
    assert data.provenance("cifar10")["content_sha256"] == prov["content_sha256"]
    with pytest.raises(data.DataError, match=r"JPEG copy\) is not prepared.*--copy jpeg"):
        data.provenance("cifar10", "jpeg")  # the lossy copy is imported only when asked for


def test_a_cifar10_file_with_another_checksum_stops_naming_it_and_caches_nothing(mirror, tmp_path, fresh_data_dir):
    import torchvision

    bad = _cifar_mirror(mirror, tmp_path / "bad", corrupt="data_batch_3")
    expected = dict(torchvision.datasets.CIFAR10.train_list)["data_batch_3"]
    with pytest.raises(data.DataError) as err:
        data.prepare("cifar10", mirror=bad)
    message = str(err.value)
    found = catalog.file_md5(bad / "cifar-10-batches-py" / "data_batch_3")
    assert "data_batch_3" in message and expected in message and found in message and found != expected
    assert "python -m lenet_core data prepare cifar10 --force" in message
    assert not fresh_data_dir.exists() or not any(fresh_data_dir.iterdir())


def test_the_jpeg_copy_is_imported_only_by_name_and_tagged_lossy(mirror, fresh_data_dir):
    with pytest.raises(ValueError, match="unknown copy 'jpeg' of mnist; valid: official"):
        data.prepare("mnist", mirror=mirror, copy="jpeg")
    prov = data.prepare("cifar10", mirror=mirror, copy="jpeg")
    assert prov["lossy"] is True and prov["copy_name"] == "jpeg"
    assert prov["files"] == {catalog.CIFAR_JPEG_ARCHIVE: catalog.CIFAR_JPEG_SHA256}
    assert (fresh_data_dir / "cifar10-jpeg.pt").exists() and not (fresh_data_dir / "cifar10.pt").exists()
    assert data.load_uint8("cifar10", "jpeg")["train_x"].shape == (50_000, 3, 32, 32)


def test_the_jpeg_copy_needs_a_mirror(fresh_data_dir, monkeypatch):
    monkeypatch.delenv("DATA_MIRROR", raising=False)
    with pytest.raises(data.DataError, match="exists only in an offline mirror.*--copy jpeg"):
        data.prepare("cifar10", copy="jpeg")


def test_a_cache_from_before_the_copies_had_names_is_not_taken_for_the_official_files(fresh_data_dir):
    fresh_data_dir.mkdir()
    (fresh_data_dir / "cifar10.pt").write_bytes(b"")
    (fresh_data_dir / "cifar10.json").write_text(json.dumps({"dataset": "cifar10", "lossy": True}))
    with pytest.raises(data.DataError, match=r"holds the jpeg copy, not the official one.*data prepare cifar10 --force"):
        data.provenance("cifar10")
