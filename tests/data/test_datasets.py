import pytest
import torch

from bayesnas.data import (
    DatasetUnavailableError,
    as_tensors,
    available_datasets,
    load_dataset,
    make_loader,
)


def test_mnist5k_is_the_real_5000_digits_split_stratified_and_seeded():
    d = load_dataset("mnist5k", seed=0)
    sizes = [len(d.train), len(d.val), len(d.test)]
    assert sum(sizes) == 5000 and sizes == [3600, 400, 1000]
    assert d.info.input_shape == (1, 28, 28) and d.info.num_classes == 10
    _, y_test = as_tensors(d.test)
    assert torch.bincount(y_test).tolist() == [100] * 10
    x, _ = as_tensors(d.train)
    assert abs(float(x.mean())) < 0.1 and abs(float(x.std()) - 1) < 0.1  # normalised
    again = load_dataset("mnist5k", seed=0)
    assert torch.equal(as_tensors(again.test)[0], as_tensors(d.test)[0])
    other = load_dataset("mnist5k", seed=1)
    assert not torch.equal(as_tensors(other.test)[0], as_tensors(d.test)[0])


def test_splits_are_disjoint():
    d = load_dataset("digits", seed=0, flatten=True)
    rows = [tuple(r.tolist()) for part in (d.train, d.val, d.test) for r in as_tensors(part)[0]]
    assert d.info.input_shape == (64,)
    assert len(rows) == 1797
    assert len(set(rows)) == len(set(tuple(r) for r in rows))  # no row duplicated by the split


def test_bad_names_and_fractions():
    with pytest.raises(ValueError, match=r"Unknown dataset 'foo'. Known datasets: cifar10, cifar100, digits"):
        load_dataset("foo")
    with pytest.raises(ValueError, match=r"`val_fraction` must be in \[0, 1\), but got val_fraction=1.5"):
        load_dataset("digits", val_fraction=1.5)
    assert load_dataset("digits", val_fraction=0).val is None


@pytest.mark.parametrize("name, expected", [
    ("mnist", "MNIST/raw/"), ("fashion-mnist", "FashionMNIST/raw/"),
    ("cifar10", "cifar-10-batches-py/"), ("cifar100", "cifar-100-python/"), ("svhn", "train_32x32.mat"),
])
def test_missing_torchvision_files_say_how_to_get_them(tmp_path, name, expected):
    with pytest.raises(DatasetUnavailableError) as err:
        load_dataset(name, data_dir=tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path) in msg and "--download" in msg and expected in msg and "mnist5k" in msg
    assert isinstance(err.value, FileNotFoundError)


def test_loader_order_is_fixed_by_its_seed():
    d = load_dataset("digits")
    a = [y.tolist() for _, y in make_loader(d.train, batch_size=64, shuffle=True, seed=5)]
    b = [y.tolist() for _, y in make_loader(d.train, batch_size=64, shuffle=True, seed=5)]
    assert a == b and "cifar10" in available_datasets()


def test_digits_noise_is_the_digits_pixels_then_label_free_noise_fixed_for_every_split_seed():
    plain, noisy = load_dataset("digits", seed=3, flatten=True), load_dataset("digits-noise", seed=3)
    assert noisy.info.input_shape == (80,) and noisy.info.num_classes == 10
    (xp, yp), (xn, yn) = as_tensors(plain.test), as_tensors(noisy.test)
    assert torch.equal(xn[:, :64], xp) and torch.equal(yn, yp)  # the same images, pixels first
    noise = torch.cat([as_tensors(p)[0][:, 64:] for p in (noisy.train, noisy.val, noisy.test)])
    assert abs(float(noise.mean())) < 0.05 and abs(float(noise.std()) - 1) < 0.05  # N(0, 1)
    # Part of the data, not of the split: an image keeps its noise under another split seed.
    other = load_dataset("digits-noise", seed=4)
    rows = {tuple(r[:64].tolist()): r[64:] for part in (other.train, other.val, other.test)
            for r in as_tensors(part)[0]}
    assert all(torch.equal(rows[tuple(r[:64].tolist())], r[64:]) for r in xn[:20])
