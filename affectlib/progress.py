"""Whether to draw a progress bar: the caller's wish, unless the environment turns bars off.

``python -m affectlib reproduce`` runs the notebooks' kernels with ``TQDM_DISABLE=1``: a bar drawn
there is dumped line by line into the executed notebook. tqdm reads that variable only for the
arguments a caller leaves out; the calls that pass ``disable=`` ask :func:`bars_on` instead.
"""

from __future__ import annotations

import os


def bars_on(progress: bool) -> bool:
    """``progress``, unless ``$TQDM_DISABLE`` is set to a true value."""
    off = os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no")
    return bool(progress) and not off
