"""``python -m affectlib train METHOD --profile P --out DIR [--seed S] [--set key=value ...]``.

Trains one registered method (:mod:`affectlib.methods`) with :func:`affectlib.train.run` and
writes ``DIR/metrics.json``, the per-epoch ``metrics.csv``, ``checkpoint.pt``, validation
predictions and provenance. Rerunning the same command after an interruption resumes from the
checkpoint. ``--set`` overrides a profile field (``--set epochs=2``) or an entry of its ``extra``
(``--set extra.stem_stride=1``, ``--set extra.expr_weights=false``; values are read as JSON when
they parse, else as text). Multi-GPU or multi-process CPU: the same command under
``torchrun --nproc_per_node N -m affectlib train ...``.

Exit status: 0 done; 1 the run failed (non-finite loss, a checkpoint of another configuration,
unreadable data); 2 bad command line (unknown method, profile or field).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from affectlib import checkpoints, methods, profiles, train

PROG = "python -m affectlib train"


def parse_set(items: list[str]) -> dict[str, Any]:
    """``--set`` items as profile overrides; ``extra.KEY=VALUE`` items gather into ``extra``."""
    overrides: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for item in items:
        key = item.split("=", 1)[0].strip()
        if key.startswith("extra."):
            if "=" not in item or not key[len("extra.") :]:
                raise ValueError(f"--set expects extra.KEY=VALUE, got {item!r}")
            raw = item.split("=", 1)[1].strip()
            try:
                extra[key[len("extra.") :]] = json.loads(raw)
            except json.JSONDecodeError:
                extra[key[len("extra.") :]] = raw
        else:
            k, v = profiles.parse_override(item)
            overrides[k] = v
    if extra:
        overrides["extra"] = {**overrides.get("extra", {}), **extra}
    return overrides


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Train one method; rerun the same command to resume after an interruption.",
    )
    ap.add_argument("method", help=f"one of: {', '.join(sorted(methods.METHODS))}")
    ap.add_argument("--profile", default="cpu", help="smoke | cpu | paper (default: cpu)")
    ap.add_argument("--out", required=True, help="output folder (checkpoint, metrics, provenance)")
    ap.add_argument("--seed", type=int, default=0, help="initialisation, data order, augmentation")
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a profile field, or extra.KEY=VALUE for a model/loop/method setting",
    )
    ap.add_argument("--data-root", default=None, help="data folder (default: the embedded set)")
    ap.add_argument(
        "--format",
        default="abaw-mtl",
        help="annotation format, or auto / a layout name to detect the layout (default: abaw-mtl)",
    )
    ap.add_argument("--data-seed", type=int, default=0, help="seed of the embedded data set")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        spec = methods.get(args.method)
        profile = profiles.get(args.profile, **parse_set(args.overrides))
        train.split_extra(spec, profile.extra)  # names an unknown option before any work
    except (KeyError, ValueError) as e:
        print(f"train: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    try:
        result = train.run(
            spec.name,
            profile,
            args.out,
            args.seed,
            data_root=args.data_root,
            format=args.format,
            data_seed=args.data_seed,
            progress=not args.no_progress,
        )
    except (train.NonFiniteLoss, checkpoints.ConfigMismatch, ValueError, KeyError, OSError) as e:
        print(f"train: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 1
    if result.metrics:  # rank 0
        m = result.metrics
        scores = ", ".join(f"{k} {m[k]:.4f}" for k in train.SCORES)
        where = f"epoch {m['epoch']} of {m['last_epoch']} (selected on {m['selected_on']})"
        print(f"train {spec.name}: {where}; validation {scores}")
        if f"test_{train.SCORES[0]}" in m:
            tested = ", ".join(f"{k} {m['test_' + k]:.4f}" for k in train.SCORES)
            print(f"train {spec.name}: test {tested}")
        print(f"-> {result.out_dir}/metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
