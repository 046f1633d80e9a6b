"""Mixing augmentations (lenet_core.mixing): what each does to a batch, drawn from the run's
generator, and the settings that turn them on."""

import pytest
import torch

from lenet_core.config import RunConfig
from lenet_core.mixing import cutout, mix


def _batch(n=64, c=3, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_cutout_blanks_one_square_per_image_and_nothing_else():
    x, _ = _batch()
    fill = torch.tensor([-1.0, -2.0, -3.0])
    out = cutout(x, 8, fill, torch.Generator().manual_seed(1))
    changed = (out != x).any(1)  # per pixel
    for i in range(len(x)):
        rows, cols = changed[i].nonzero(as_tuple=True)
        assert 16 <= len(rows) <= 64  # a square of side 8, clipped at most to a quarter at a corner
        assert rows.max() - rows.min() < 8 and cols.max() - cols.min() < 8
        assert len(rows) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)  # a rectangle
        assert torch.equal(out[i][:, rows, cols], fill[:, None].expand(3, len(rows)))
    assert torch.equal(cutout(x, 8, fill, torch.Generator().manual_seed(1)), out)  # the generator decides


def test_mixup_blends_each_image_with_another_by_its_share():
    x, y = _batch()
    out, other, share = mix(x, y, "mixup", 1.0, torch.Generator().manual_seed(2))
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(2))  # the first draw
    assert torch.equal(other, y[perm])
    assert torch.allclose(out, share.view(-1, 1, 1, 1) * x + (1 - share.view(-1, 1, 1, 1)) * x[perm])
    assert ((share > 0) & (share < 1)).all()
    many = mix(*_batch(n=4000, c=1, size=2), "mixup", 1.0, torch.Generator().manual_seed(3))[2]
    assert abs(many.mean().item() - 0.5) < 0.02 and abs(many.std().item() - (1 / 12) ** 0.5) < 0.02  # uniform
    peaked = mix(*_batch(n=4000, c=1, size=2), "mixup", 0.2, torch.Generator().manual_seed(3))[2]
    assert ((peaked < 0.1) | (peaked > 0.9)).float().mean() > 0.5  # Beta(0.2, 0.2) piles up near 0 and 1


def test_cutmix_pastes_a_box_of_another_image_and_its_share_is_what_was_kept():
    x, y = _batch()
    out, other, share = mix(x, y, "cutmix", 1.0, torch.Generator().manual_seed(4))
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(4))
    assert torch.equal(other, y[perm])
    pasted = (out == x[perm]).all(1) & (out != x).any(1)
    kept = (out == x).all(1)
    assert (pasted | kept).all()  # every pixel is its own or the other image's
    other_image = perm != torch.arange(len(x))  # an image mixed with itself keeps every pixel
    assert other_image.sum() > 50
    assert torch.allclose(share[other_image], kept.flatten(1).float().mean(1)[other_image])


def test_mixing_settings_are_validated_where_they_enter():
    assert RunConfig(mix="cutmix", mix_alpha=0.5).mix_alpha == 0.5
    with pytest.raises(ValueError, match="unknown mix 'cutpaste'; valid: none, cutout, mixup, cutmix"):
        RunConfig(mix="cutpaste")
    with pytest.raises(ValueError, match="mix_alpha=0.5 applies only to mix mixup or cutmix; got mix 'cutout'"):
        RunConfig(mix="cutout", mix_alpha=0.5)
    with pytest.raises(ValueError, match="cutout_pixels=12 applies only to mix cutout; got mix 'none'"):
        RunConfig(cutout_pixels=12)
    with pytest.raises(ValueError, match="cutout_pixels=40 is out of range"):
        RunConfig(mix="cutout", cutout_pixels=40)
    keyed = RunConfig().canonical_json()
    assert all(name not in keyed for name in ("mix", "mix_alpha", "cutout_pixels"))


@pytest.mark.slow
@pytest.mark.usefixtures("mnist_ready")
@pytest.mark.parametrize("kind", ["cutout", "mixup", "cutmix"])
def test_a_run_with_a_mixing_augmentation_trains(kind):
    from lenet_core.train import train

    record = train(RunConfig(mix=kind, train_size=512, epochs=2, batch_size=64), progress=False).record
    first, last = record["history"]
    assert record["status"] == "ok" and last["train_loss"] < first["train_loss"] and last["val_acc"] > 0.2
