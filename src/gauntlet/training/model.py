"""Models and their on-disk bundle.

The scaler fitted by preprocess is folded into the model as a Standardize layer with buffers,
so a saved model scores raw features by itself and loads with torch.load(weights_only=True):
no pickled preprocessing objects anywhere.
"""

from __future__ import annotations

import io
from typing import Any

import torch
from torch import nn


class Standardize(nn.Module):
    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, mean: list[float], scale: list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale


def build_model(spec: dict[str, Any], preprocessor: dict[str, Any], n_classes: int) -> nn.Sequential:
    """Build the network a model spec describes.

    kind "mlp": Standardize -> [Linear -> ReLU] per hidden width -> Linear.
    kind "cnn": Standardize -> reshape to image_shape -> [Conv3x3 -> ReLU] per channel count ->
    MaxPool2d -> [Linear -> ReLU] per hidden width -> Linear (for small images such as digits).
    """
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
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


def bundle_bytes(model: nn.Module, spec: dict[str, Any]) -> bytes:
    """Serialise the state dict with the spec needed to rebuild the module (plain types only)."""
    buffer = io.BytesIO()
    torch.save({"state_dict": model.state_dict(), "spec": spec}, buffer)
    return buffer.getvalue()


def load_bundle(data: bytes) -> nn.Sequential:
    """Rebuild a model from bundle bytes; weights_only refuses anything but tensors and plain data."""
    payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    spec = payload["spec"]
    model = build_model(spec["model"], spec["preprocessor"], spec["n_classes"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model


def predict_proba(model: nn.Module, features: Any, batch_size: int = 4096) -> Any:
    import numpy as np

    out = []
    with torch.no_grad():
        for start in range(0, len(features), batch_size):
            chunk = torch.as_tensor(features[start : start + batch_size])
            out.append(torch.softmax(model(chunk), dim=1).numpy())
    return np.concatenate(out).astype(np.float64)


def parameter_digest(model: nn.Module) -> str:
    """sha256 over all parameters and buffers: equal digests mean bit-identical weights."""
    from gauntlet.hashing import new_sha256

    digest = new_sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
