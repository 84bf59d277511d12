"""Models and their on-disk bundle.

The scaler fitted by preprocess is folded into the model as a Standardize layer with buffers, and
a regression net ends in an Unstandardize layer with the training targets' mean and scale, so a
saved model scores features by itself and predicts in the label's own units. The bundle keeps the
preprocessor (plain JSON) beside the weights, so `score_raw_rows` encodes raw rows exactly as
training did. It loads with torch.load(weights_only=True): no pickled objects anywhere.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    import pandas as pd


class Standardize(nn.Module):
    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, mean: list[float], scale: list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale


class Unstandardize(nn.Module):
    """The inverse of standardising the target: a regression net's last layer, so it predicts raw values."""

    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, mean: float, scale: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean), dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(float(scale), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.mean


def output_width(task: str, n_classes: int) -> int:
    """One logit per class, or one value for regression."""
    return 1 if task == "regression" else n_classes


def build_model(
    spec: dict[str, Any], preprocessor: dict[str, Any], n_classes: int, task: str = "classification"
) -> nn.Sequential:
    """Build the network a model spec describes.

    kind "mlp": Standardize -> [Linear -> ReLU] per hidden width -> Linear.
    kind "cnn": Standardize -> reshape to image_shape -> [Conv3x3 -> ReLU] per channel count ->
    MaxPool2d -> [Linear -> ReLU] per hidden width -> Linear (for small images such as digits).
    Classification ends in n_classes logits; regression in one value and Unstandardize(target).
    """
    if task not in ("classification", "regression"):
        raise ValueError(f"unknown task {task!r}: expected classification or regression")
    layers: list[nn.Module] = [Standardize(preprocessor["mean"], preprocessor["scale"])]
    width = len(preprocessor["features"])
    if spec["kind"] == "cnn":
        height, breadth = spec["image_shape"]
        if height * breadth != width:
            raise ValueError(f"image_shape {spec['image_shape']} does not hold {width} features")
        layers.append(nn.Unflatten(1, (1, height, breadth)))
        channels = 1
        for out in spec["channels"]:
            layers += [nn.Conv2d(channels, out, kernel_size=3, padding=1), nn.ReLU()]
            channels = out
        layers += [nn.MaxPool2d(2), nn.Flatten()]
        width = channels * (height // 2) * (breadth // 2)
    elif spec["kind"] != "mlp":
        raise ValueError(f"unknown model kind {spec['kind']!r}")
    for size in spec["hidden"]:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, output_width(task, n_classes)))
    if task == "regression":
        target = preprocessor.get("target")
        if not target:
            raise ValueError("a regression model needs the preprocessor's 'target' mean and scale")
        layers.append(Unstandardize(target["mean"], target["scale"]))
    return nn.Sequential(*layers)


def bundle_bytes(model: nn.Module, spec: dict[str, Any]) -> bytes:
    """Serialise the state dict with the spec needed to rebuild the module (plain types only)."""
    buffer = io.BytesIO()
    torch.save({"state_dict": model.state_dict(), "spec": spec}, buffer)
    return buffer.getvalue()


def bundle_spec(model: dict[str, Any], preprocessor: dict[str, Any], task: str, classes: list[Any]) -> dict[str, Any]:
    """What a bundle needs to rebuild and run its model; `classes` are the label values, in class-index
    order ([] for regression)."""
    return {"model": model, "preprocessor": preprocessor, "n_classes": len(classes), "task": task, "classes": classes}


def read_bundle(data: bytes) -> tuple[nn.Sequential, dict[str, Any]]:
    """Rebuild a model from bundle bytes, with its spec; weights_only refuses anything but tensors and
    plain data. A bundle without "task" predates regression: it is a classifier."""
    payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    spec: dict[str, Any] = payload["spec"]
    task = spec.get("task", "classification")
    model = build_model(spec["model"], spec["preprocessor"], spec["n_classes"], task)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, {**spec, "task": task}


def load_bundle(data: bytes) -> nn.Sequential:
    return read_bundle(data)[0]


def predict(model: nn.Module, features: Any, task: str, batch_size: int = 4096) -> np.ndarray:
    """Class probabilities (n, K) for classification, predicted values (n, 1) for regression."""
    if task == "classification":
        return predict_proba(model, features, batch_size)
    return _run(model, features, batch_size, lambda out: out)


def predict_proba(model: nn.Module, features: Any, batch_size: int = 4096) -> np.ndarray:
    return _run(model, features, batch_size, lambda logits: torch.softmax(logits, dim=1))


def _run(model: nn.Module, features: Any, batch_size: int, head: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
    out = []
    with torch.no_grad():
        for start in range(0, len(features), batch_size):
            chunk = torch.as_tensor(features[start : start + batch_size])
            out.append(head(model(chunk)).numpy())
    return np.concatenate(out).astype(np.float64)


def score_raw_rows(bundle: bytes, frame: pd.DataFrame) -> np.ndarray:
    """A saved model's predictions for raw rows (the table's own columns, nulls and unseen categories
    allowed): encoded with the bundle's preprocessor, as training and evaluation encode them."""
    from gauntlet.encoding import encode_frame

    model, spec = read_bundle(bundle)
    return predict(model, encode_frame(frame, spec["preprocessor"]), spec["task"])


def parameter_digest(model: nn.Module) -> str:
    """sha256 over all parameters and buffers: equal digests mean bit-identical weights."""
    from gauntlet.hashing import new_sha256

    digest = new_sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
