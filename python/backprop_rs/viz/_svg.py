"""Tiny inline-SVG charts and a PNG writer for the self-contained HTML report (no matplotlib, no
scripts, no network: every picture is text inside the page)."""

from __future__ import annotations

import base64
import html
import math
import struct
import zlib
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def esc(s: object) -> str:
    """HTML-escapes ``s`` (text and attribute values)."""
    return html.escape(str(s), quote=True)


def _diverging(v: float, vmax: float) -> str:
    """Blue (negative) - white - red (positive)."""
    t = 0.0 if vmax <= 0 or not math.isfinite(v) else max(-1.0, min(1.0, v / vmax))
    if t >= 0:
        r, g, b = 255, int(255 * (1 - t) + 40 * t), int(255 * (1 - t) + 40 * t)
    else:
        t = -t
        r, g, b = int(255 * (1 - t) + 40 * t), int(255 * (1 - t) + 90 * t), 255
    return f"#{r:02x}{g:02x}{b:02x}"


def _gray(v: float, lo: float, hi: float) -> str:
    t = 0.0 if hi <= lo or not math.isfinite(v) else (v - lo) / (hi - lo)
    c = int(255 * (1 - max(0.0, min(1.0, t))))
    return f"#{c:02x}{c:02x}{c:02x}"


def heatmap(a: np.ndarray, cell: int = 22, diverging: bool = False, numbers: bool = False, title: str = "") -> str:
    """An SVG grid of ``a`` (2-D): gray levels (white = low) or blue-white-red around 0."""
    a = np.asarray(a, dtype=np.float64)
    h, w = a.shape
    top = 16 if title else 0
    vmax = float(np.nanmax(np.abs(a))) if a.size else 0.0
    lo, hi = (float(np.nanmin(a)), float(np.nanmax(a))) if a.size else (0.0, 1.0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w * cell}" height="{h * cell + top}" role="img">']
    if title:
        parts.append(f'<text x="0" y="12" font-size="11">{esc(title)}</text>')
    for i in range(h):
        for j in range(w):
            v = a[i, j]
            fill = _diverging(v, vmax) if diverging else _gray(v, lo, hi)
            parts.append(f'<rect x="{j * cell}" y="{i * cell + top}" width="{cell}" height="{cell}" fill="{fill}" stroke="#ccc" stroke-width="0.5"><title>[{i},{j}] {v:.4g}</title></rect>')
            if numbers:
                dark = (not diverging) and (v - lo) > 0.55 * (hi - lo)
                parts.append(f'<text x="{j * cell + cell / 2}" y="{i * cell + top + cell / 2 + 3}" font-size="{max(6, cell // 3)}" '
                             f'text-anchor="middle" fill="{"#fff" if dark else "#333"}">{(f"{v:.2f}" if diverging else f"{v:.2g}")}</text>')
    parts.append("</svg>")
    return "".join(parts)


def strip(v: Sequence[float], cell: int = 5, height: int = 18, diverging: bool = True, title: str = "") -> str:
    """A vector as one row of coloured cells (wraps at 128 per row)."""
    v = np.asarray(v, dtype=np.float64).ravel()
    per = 128
    rows = max(1, math.ceil(v.size / per))
    a = np.full((rows, min(per, v.size) or 1), np.nan)
    a.ravel()[: v.size] = v
    vmax = float(np.nanmax(np.abs(v))) if v.size else 0.0
    lo, hi = (float(np.nanmin(v)), float(np.nanmax(v))) if v.size else (0.0, 1.0)
    top = 14 if title else 0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{a.shape[1] * cell}" height="{rows * height + top}" role="img">']
    if title:
        parts.append(f'<text x="0" y="11" font-size="10">{esc(title)}</text>')
    for i in range(rows):
        for j in range(a.shape[1]):
            x = a[i, j]
            if not math.isfinite(x):
                continue
            fill = _diverging(x, vmax) if diverging else _gray(x, lo, hi)
            parts.append(f'<rect x="{j * cell}" y="{i * height + top}" width="{cell}" height="{height}" fill="{fill}"><title>{i * per + j}: {x:.4g}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def bars(values: Sequence[float], labels: Optional[Sequence[str]] = None, width: int = 420, bar: int = 16,
         highlight: Optional[int] = None, fmt: str = "{:.3g}") -> str:
    """Horizontal bars around a zero line (negative left in blue, positive right in red)."""
    v = np.asarray(values, dtype=np.float64)
    labels = list(labels) if labels is not None else [str(i) for i in range(v.size)]
    lw = 7 * max((len(s) for s in labels), default=1) + 8
    vw = 70
    plot = width - lw - vw
    vmax = float(np.max(np.abs(v))) if v.size and np.any(np.isfinite(v)) else 1.0
    vmax = vmax or 1.0
    zero = lw + (plot / 2 if np.any(v < 0) else 0)
    scale = (plot / 2 if np.any(v < 0) else plot) / vmax
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{v.size * (bar + 4) + 4}" role="img">']
    for i, (x, lab) in enumerate(zip(v, labels)):
        y = 2 + i * (bar + 4)
        wpx = abs(x) * scale if math.isfinite(x) else 0
        x0 = zero - wpx if x < 0 else zero
        color = "#2f6fbf" if x < 0 else "#d9534f"
        weight = ' font-weight="bold"' if highlight == i else ""
        parts.append(f'<text x="{lw - 6}" y="{y + bar - 4}" font-size="11" text-anchor="end"{weight}>{esc(lab)}</text>')
        stroke = ' stroke="#000" stroke-width="1.5"' if highlight == i else ""
        parts.append(f'<rect x="{x0:.1f}" y="{y}" width="{max(wpx, 0.5):.1f}" height="{bar}" fill="{color}"{stroke}/>')
        parts.append(f'<text x="{width - vw + 4}" y="{y + bar - 4}" font-size="11"{weight}>{esc(fmt.format(x))}</text>')
    parts.append(f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="0" y2="{v.size * (bar + 4) + 4}" stroke="#555" stroke-width="0.7"/>')
    parts.append("</svg>")
    return "".join(parts)


def lines(series: Dict[str, Tuple[Sequence[float], Sequence[float]]], title: str = "", xlabel: str = "step",
          width: int = 440, height: int = 220, logy: bool = False) -> str:
    """A line chart, one line per series, with axes, ticks and a legend."""
    pts = {k: (np.asarray(x, np.float64), np.asarray(y, np.float64)) for k, (x, y) in series.items() if len(x)}
    if logy:
        pts = {k: (x[y > 0], np.log10(y[y > 0])) for k, (x, y) in pts.items()}
    allx = np.concatenate([x for x, _ in pts.values()]) if pts else np.zeros(1)
    ally = np.concatenate([y[np.isfinite(y)] for _, y in pts.values()]) if pts else np.zeros(1)
    ally = ally if ally.size else np.zeros(1)
    x0, x1 = float(allx.min()), float(allx.max())
    y0, y1 = float(ally.min()), float(ally.max())
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1
    ml, mr, mt, mb = 52, 110, 22, 32
    pw, ph = width - ml - mr, height - mt - mb

    def sx(x: float) -> float:
        return ml + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return mt + (1 - (y - y0) / (y1 - y0)) * ph

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<text x="{ml}" y="14" font-size="12" font-weight="bold">{esc(title)}</text>',
             f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for t in np.linspace(y0, y1, 5):
        lab = f"1e{t:.1f}" if logy else f"{t:.3g}"
        parts.append(f'<line x1="{ml - 3}" x2="{ml}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#999"/>'
                     f'<text x="{ml - 5}" y="{sy(t) + 3:.1f}" font-size="9" text-anchor="end">{lab}</text>')
    for t in np.linspace(x0, x1, 5):
        parts.append(f'<text x="{sx(t):.1f}" y="{mt + ph + 12}" font-size="9" text-anchor="middle">{t:.4g}</text>')
    parts.append(f'<text x="{ml + pw / 2}" y="{height - 4}" font-size="10" text-anchor="middle">{esc(xlabel)}</text>')
    if y0 < 0 < y1 and not logy:
        parts.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{sy(0):.1f}" y2="{sy(0):.1f}" stroke="#bbb" stroke-dasharray="3,3"/>')
    for i, (k, (x, y)) in enumerate(pts.items()):
        c = PALETTE[i % len(PALETTE)]
        ok = np.isfinite(y)
        path = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in zip(x[ok], y[ok]))
        parts.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="1.5"/>')
        ly = mt + 10 + 14 * i
        parts.append(f'<line x1="{ml + pw + 8}" x2="{ml + pw + 22}" y1="{ly}" y2="{ly}" stroke="{c}" stroke-width="2"/>'
                     f'<text x="{ml + pw + 26}" y="{ly + 3}" font-size="10">{esc(k)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def png(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG (``rgb``: H x W x 3 uint8) written with zlib alone."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[i].tobytes() for i in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def gray_png_uri(img: np.ndarray, scale: int = 16) -> str:
    """A ``data:image/png;base64,...`` URI of a gray image (dark = high, like ink), upscaled."""
    a = np.asarray(img, np.float64)
    lo, hi = float(a.min()), float(a.max())
    g = (255 * (1 - (a - lo) / (hi - lo if hi > lo else 1))).astype(np.uint8)
    g = np.kron(g, np.ones((scale, scale), np.uint8))
    return "data:image/png;base64," + base64.b64encode(png(np.stack([g, g, g], -1))).decode("ascii")
