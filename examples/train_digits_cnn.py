"""Train a small CNN on scikit-learn's 8x8 digits and export it to ONNX (the demo's "trained ANN").

Writes ``OUT/digits_cnn.onnx``, ``OUT/calib.npz`` (training images, for calibration) and
``OUT/test.npz`` (held-out images and labels). Takes about ten seconds on two CPU cores.

    python examples/train_digits_cnn.py OUT
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def main(out: Path, epochs: int = 30, seed: int = 0) -> None:
    torch.manual_seed(seed)
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8) in [0, 1]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)

    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
        torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32 * 2 * 2, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for _epoch in range(epochs):
        model.train()
        for idx in torch.randperm(len(xt)).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
    out.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, torch.zeros(1, 1, 8, 8), out / "digits_cnn.onnx", input_names=["image"],
                      output_names=["logits"], dynamo=False, opset_version=17,
                      training=torch.onnx.TrainingMode.EVAL, do_constant_folding=False)
    np.savez(out / "calib.npz", x=x_train[:500])
    np.savez(out / "test.npz", x=x_test, y=y_test)
    print(f"trained digits CNN: test accuracy {acc:.3f}; wrote {out}/digits_cnn.onnx, calib.npz, test.npz")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo-out"))
