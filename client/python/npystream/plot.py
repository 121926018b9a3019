"""Activation grids for notebooks, the same layout the dashboard draws:
sample 0's channels as tiles (N,C,H,W or C,H,W), a 2-D value as one image,
a 1-D value as a strip; a colour bar with min/max and a histogram per layer.

    from npystream import plot
    fig = plot.show_activations(client, "demo", ["conv1", "fc"], {"x": x})
    plot.show_activations(client, "demo", ["conv1"], live=True)  # from Subscribe

matplotlib is imported on first use, so `import npystream` never needs it.
"""
import math
from typing import Any, Iterable, Mapping, Optional, Tuple

import numpy as np

__all__ = ["activation_grid", "show_activations"]


def activation_grid(array: Any, gap: int = 1) -> Any:
    """A 2-D float array tiling `array` as the dashboard does; gaps are NaN
    (drawn as background)."""
    a = np.asarray(array)
    if np.iscomplexobj(a):
        a = np.abs(a)
    a = a.astype(np.float64, copy=False)
    if a.ndim == 0:
        a = a.reshape(1, 1)
    if a.ndim == 1:
        return a.reshape(1, -1)
    if a.ndim == 2:
        return a
    h, w = a.shape[-2:]
    tiles = a[0] if a.ndim == 4 else a
    tiles = tiles.reshape(-1, h, w)
    cols = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    grid = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        grid[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = tile
    return grid


def _figure(layers: Any) -> Tuple[Any, Any]:
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(layers), 2, figsize=(9, 3.2 * len(layers)), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 1]})
    return fig, axes


def _draw(fig: Any, axes: Any, row: int, layer: str, array: Any, note: str = "") -> Any:
    heat, hist = axes[row]
    heat.clear()
    hist.clear()
    grid = activation_grid(array)
    image = heat.imshow(grid, cmap="viridis", interpolation="nearest", aspect="auto")
    heat.set_title(f"{layer} {array.dtype.str} {list(array.shape)}{note}", fontsize=9)
    heat.set_xticks([])
    heat.set_yticks([])
    if not hasattr(heat, "_npystream_colorbar"):
        heat._npystream_colorbar = fig.colorbar(image, ax=heat, fraction=0.04)
    else:
        heat._npystream_colorbar.update_normal(image)
    values = grid[np.isfinite(grid)]
    hist.hist(values, bins=32, color="#3b528b")
    hist.set_title("histogram", fontsize=9)
    return image


def show_activations(client: Any, model: str, layers: Iterable[str],
                     inputs: Optional[Mapping[str, Any]] = None, *, live: bool = False,
                     max_updates: Optional[int] = None, timeout: Optional[float] = None) -> Any:
    """Draws `layers` of `model` and returns the matplotlib Figure.

    With `inputs` ({name: ndarray}), runs one Infer capturing the layers and
    draws them. With `live=True`, subscribes first and redraws each value the
    layers produce (from anyone's Infer, this call's included) until the
    figure is closed, `max_updates` values were drawn or `timeout` seconds
    passed."""
    import matplotlib.pyplot as plt
    layers = list(layers)
    fig, axes = _figure(layers)
    if not live:
        if inputs is None:
            raise ValueError("show_activations needs inputs unless live=True")
        result = client.infer(model, inputs, capture=layers)
        for row, layer in enumerate(layers):
            _draw(fig, axes, row, layer, result[layer])
        fig.tight_layout()
        return fig

    import threading
    import time
    subscription = client.subscribe(model, layers)
    timer = None
    if timeout is not None:
        timer = threading.Timer(timeout, subscription.cancel)
        timer.start()
    try:
        if inputs is not None:
            threading.Thread(target=client.infer, args=(model, inputs),
                             kwargs={"capture": layers, "fetch": False}, daemon=True).start()
        updates = 0
        start = time.monotonic()
        for layer, array in subscription:
            _draw(fig, axes, layers.index(layer), layer, array,
                  note=f"  t={time.monotonic() - start:.1f}s")
            fig.canvas.draw_idle()
            if plt.get_backend().lower() != "agg":
                plt.pause(0.001)
                if not plt.fignum_exists(fig.number):
                    break
            updates += 1
            if max_updates is not None and updates >= max_updates:
                break
    finally:
        subscription.cancel()
        if timer is not None:
            timer.cancel()
    return fig
