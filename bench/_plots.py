"""Pictures for the benches (matplotlib, the ``bench`` extra); written under bench/out/."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path


def heatmap(path: Path, rows: list[str], cols: list[str], values: list[list[float]],
            notes: list[list[str]], title: str) -> None:
    """A rows x cols heatmap with a note in every cell, saved as a PNG (colours: 0..1 unless
    the values leave that range)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    data = np.array(values, dtype=float)
    fig, ax = plt.subplots(figsize=(max(1.6 * len(cols) + 3, 7.5), 0.42 * len(rows) + 1.8))
    finite = data[np.isfinite(data)]
    lo = min(0.0, float(finite.min())) if finite.size else 0.0
    hi = max(1.0, float(finite.max())) if finite.size else 1.0
    im = ax.imshow(data, cmap="viridis", vmin=lo, vmax=hi, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for i in range(len(rows)):
        for j in range(len(cols)):
            if math.isfinite(data[i, j]):
                ax.text(j, i, f"{data[i, j]:.2f}\n{notes[i][j]}", ha="center", va="center",
                        fontsize=6,
                        color="white" if data[i, j] < lo + 0.6 * (hi - lo) else "black")
    fig.colorbar(im, ax=ax, fraction=0.03)
    ax.set_title("\n".join(textwrap.wrap(title, 70)), fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
