"""The demand family's fan chart as PNG (Pillow), drawn by the service and ``ecomgan sample``."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from ecomgan.demand import quantiles


def fan_chart(
    dates: np.ndarray,
    sales: np.ndarray,
    future: np.ndarray,
    paths: np.ndarray,
    supply: np.ndarray | None = None,
    title: str = "",
    width: int = 720,
) -> bytes:
    """A fan chart as PNG: the history (black) and the scenario bands of `QUANTILES` (5-95%,
    10-90%, 25-75%, median in blue) of the weekly demand; given the ``supply`` of a stock-out
    request (stock plus cumulative receipts), a second panel shows the cumulative demand's
    bands against it (red)."""
    from PIL import Image, ImageDraw

    panels = [(sales, quantiles(paths), None, title or "weekly demand")]
    if supply is not None:
        cum = quantiles(np.cumsum(paths, axis=1))
        panels.append((np.zeros(1), cum, supply, "cumulative demand vs stock + receipts (red)"))
    img = Image.new("RGB", (width, 300 * len(panels)), "white")
    draw = ImageDraw.Draw(img)
    for p, (hist, bands, line, label) in enumerate(panels):
        _panel(draw, (0, 300 * p, width, 300), hist, bands, line, label)
        # Dates under the axis: the first week, the forecast origin and the last forecast week
        # (the cumulative panel starts at the origin).
        n, k = len(hist), bands.shape[1]
        ticks = [(0.0, dates[-1]), (1.0, future[-1])]
        origin = (n - 1) / (n + k - 1)
        if p == 0:
            # The origin's date only where it does not run into the last one (a short horizon).
            far = (width - 72) * (1.0 - origin) >= 140
            ticks = [(0.0, dates[0]), *([(origin, dates[-1])] if far else []), (1.0, future[-1])]
        for frac, d in ticks:
            x = 60 + (width - 72) * frac
            draw.text((min(x, width - 70), 300 * p + 280), str(d), fill="black")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _panel(
    draw: Any,
    box: tuple[int, int, int, int],
    hist: np.ndarray,
    bands: np.ndarray,
    line: np.ndarray | None,
    label: str,
) -> None:
    x0, y0, w, h = box
    left, right, top, bottom = 60, 12, 24, 28
    n, k = len(hist), bands.shape[1]
    y_max = float(max(hist.max(), bands.max(), 0 if line is None else line.max())) * 1.05 or 1.0

    def xy(i: float, v: float) -> tuple[float, float]:
        x = x0 + left + (w - left - right) * i / max(n + k - 1, 1)
        return x, y0 + top + (h - top - bottom) * (1 - v / y_max)

    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        _, y = xy(0, frac * y_max)
        draw.line([(x0 + left, y), (x0 + w - right, y)], fill=(230, 230, 230))
        draw.text((x0 + 2, y - 6), f"{frac * y_max:,.0f}"[:9], fill="black")
    for lo, hi, shade in (
        (0, 18, (198, 219, 239)),
        (1, 17, (158, 202, 225)),
        (4, 14, (107, 174, 214)),
    ):
        upper = [xy(n + j, bands[hi, j]) for j in range(k)]
        lower = [xy(n + j, bands[lo, j]) for j in reversed(range(k))]
        draw.polygon([xy(n - 1, hist[-1]), *upper, *lower], fill=shade)
    if n > 1:
        draw.line([xy(i, v) for i, v in enumerate(hist)], fill="black", width=2)
    draw.line(
        [xy(n - 1, hist[-1])] + [xy(n + j, bands[9, j]) for j in range(k)],
        fill=(8, 69, 148),
        width=2,
    )
    if line is not None:
        draw.line(
            [xy(n - 1, line[0])] + [xy(n + j, v) for j, v in enumerate(line)],
            fill=(203, 24, 29),
            width=2,
        )
    draw.text((x0 + left, y0 + 4), label, fill="black")
