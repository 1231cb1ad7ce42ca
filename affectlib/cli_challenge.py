"""``python -m affectlib predict`` and ``python -m affectlib evaluate``: a trained run's challenge
submission, and the challenge metrics of a predictions file (:mod:`affectlib.challenge`).

``predict RUN_DIR --data ROOT --out FILE [--format F] [--split S] [--task mtl|expr|au|va]``
rebuilds the model of a run written by :func:`affectlib.train.fit` (``config.json``, and the
selected epoch's weights in ``checkpoint.pt``), predicts every frame of split ``S`` (default
``validation``) of the data under ROOT (format ``F``, default the run's; ``auto`` detects the
layout) in the run's batch size and image size, and writes the ABAW submission: ``--task mtl``
(default) the MTL CSV ``image,valence,arousal,expression,aus``, one row per frame;
``--task expr|au|va`` a per-task folder ``FILE/VIDEO.txt``. AU decisions at the run's threshold
(``challenge.RUN_AU_THRESHOLD``). The written file is read back with
:func:`affectlib.challenge.read_predictions` and aligned with the frames it was written for; any error fails the command.

``evaluate PREDICTIONS --truth ANNOTATIONS [--truth-format F] [--split S] [--json]`` reads the
predictions (MTL CSV or per-task folder), the ground truth (an annotation file or folder in any
format; ``auto`` guesses from the header or the layout) and prints the challenge metrics. Exit
status: 0 scored; 1 the predictions file is malformed or misaligned (every problem printed as
``FILE:LINE: field: reason``: missing frames at the truth's line, extra frames, wrong column
counts, values out of range), nothing scored; 2 unusable input or bad arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from affectlib import challenge, models, train
from affectlib.data import datasets, study
from affectlib.data.cache import ImageCache, ImageCacheError
from affectlib.data.layouts import LayoutError
from affectlib.data.parsing import UnusableInputError
from affectlib.distributed import configure_runtime

EXIT_OK, EXIT_INVALID, EXIT_UNUSABLE = 0, 1, 2


# --- predict --------------------------------------------------------------------------------------


def load_run(run_dir: str | Path) -> tuple[dict[str, Any], torch.nn.Module]:
    """The run's configuration and its model holding the selected epoch's weights."""
    run = Path(run_dir)
    config, ckpt_path = run / "config.json", run / "checkpoint.pt"
    for f in (config, ckpt_path):
        if not f.is_file():
            raise FileNotFoundError(f"{f}: not found; RUN_DIR must be a folder written by train")
    record = json.loads(config.read_text())
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    best = ckpt.get("best") or {}
    weights = best.get("model") or ckpt["model"]
    model_cfg = models.ModelConfig(**{**record["model"], "weights": None})
    model = models.build_model(model_cfg)
    model.load_state_dict(weights)
    return record, model


def predict_run(
    run_dir: str | Path,
    data_root: str | Path,
    format: str | None = None,
    split: str = "validation",
    progress: bool = True,
):
    """(rows of ``split``, :func:`affectlib.train.predict`'s output on them, the run's record)."""
    record, model = load_run(run_dir)
    format = format or record.get("data", {}).get("format", "abaw-mtl")
    loaded = study.load_dataset(data_root, format)
    if loaded.errors:
        warnings.warn(
            f"{data_root} ({format}): {loaded.rejected} rows rejected and not predicted, e.g. "
            f"{loaded.errors[0]}; `python -m affectlib audit` lists them all",
            stacklevel=2,
        )
    table = loaded.table
    rows = table[table["split"] == split].reset_index(drop=True)
    if rows.empty:
        found = ", ".join(sorted(set(table["split"]))) or "none"
        raise ValueError(f"{data_root} ({format}) has no {split!r} rows; splits found: {found}")
    images = study.image_root(data_root, format)
    cache = ImageCache.build(rows, images, size=record["image_size"], progress=progress)
    loader = datasets.BatchLoader(
        rows, cache, datasets.SequentialSampler(len(rows)), record["batch_size"]
    )
    device = torch.device("cpu")
    previous = torch.are_deterministic_algorithms_enabled()
    configure_runtime(device, record.get("train", {}).get("deterministic", True))
    # the precision the run was validated at (runs recorded before the field: float32 on CPU)
    precision = record.get("train", {}).get("precision", "fp32")
    try:
        pred = train.predict(model, loader, device, precision)
    finally:
        torch.use_deterministic_algorithms(previous)
    return rows, pred, record


def _predict_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m affectlib predict",
        description="Write a trained run's predictions in the ABAW submission format.",
    )
    ap.add_argument("run_dir", help="a folder written by `python -m affectlib train`")
    ap.add_argument("--data", required=True, help="data folder (the data set's root)")
    ap.add_argument("--out", required=True, help="the submission: a CSV (mtl) or a folder (task)")
    ap.add_argument("--format", default=None, help="annotation format or auto (default: the run's)")
    ap.add_argument("--split", default="validation", help="split to predict (default: validation)")
    ap.add_argument("--task", default="mtl", choices=("mtl", *challenge.TASKS))
    ap.add_argument(
        "--au-threshold",
        type=float,
        default=challenge.RUN_AU_THRESHOLD,
        help="AU present when its sigmoid exceeds this (default: the run's, 0.5)",
    )
    ap.add_argument("--no-progress", action="store_true")
    return ap


def predict_main(argv: list[str]) -> int:
    try:
        args = _predict_parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else EXIT_UNUSABLE
    try:
        rows, pred, _ = predict_run(
            args.run_dir, args.data, args.format, args.split, not args.no_progress
        )
        expr, aus, va = challenge.decisions(pred, args.au_threshold)
        if args.task == "mtl":
            challenge.write_mtl(args.out, rows["path"].tolist(), expr, aus, va)
        else:
            challenge.write_task(args.out, args.task, rows, expr, aus, va)
        # validated by our own reader: every frame once, every value in range
        written, tasks = challenge.read_predictions(args.out)
        _, errors = challenge.align(written, tasks, rows)
        errors = written.errors + errors
    except (
        FileNotFoundError,
        ValueError,
        KeyError,
        UnusableInputError,
        LayoutError,
        ImageCacheError,
    ) as e:
        print(f"predict: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return EXIT_UNUSABLE
    if errors:
        print("\n".join(str(e) for e in errors), file=sys.stderr)
        return EXIT_INVALID
    print(f"predict: {len(rows)} frames of {args.split} -> {args.out} ({args.task})")
    return EXIT_OK


# --- evaluate -------------------------------------------------------------------------------------


def _evaluate_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m affectlib evaluate",
        description="Score a predictions file (ABAW submission format) against the ground truth.",
    )
    ap.add_argument("predictions", help="MTL CSV, or a per-task folder of VIDEO.txt files")
    ap.add_argument("--truth", required=True, help="annotation file or folder")
    ap.add_argument("--truth-format", default="auto", help="annotation format (default: auto)")
    ap.add_argument("--split", default=None, help="score one split of the truth only")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return ap


def _json_value(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_value(v) for k, v in x.items()}
    return x


def evaluate_main(argv: list[str]) -> int:
    try:
        args = _evaluate_parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else EXIT_UNUSABLE
    try:
        truth, truth_format = challenge.truth_table(args.truth, args.truth_format, args.split)
        predictions, tasks = challenge.read_predictions(args.predictions)
    except (UnusableInputError, LayoutError, ValueError, OSError) as e:
        print(f"evaluate: unusable input: {e}", file=sys.stderr)
        if args.json:
            print(json.dumps({"status": "unusable", "message": str(e)}))
        return EXIT_UNUSABLE
    if truth.errors:
        print(
            f"evaluate: {truth.rejected} ground-truth rows rejected and not scored, e.g. "
            f"{truth.errors[0]}",
            file=sys.stderr,
        )
    aligned, misaligned = challenge.align(predictions, tasks, truth.table)
    errors = predictions.errors + misaligned
    if errors:
        if args.json:
            print(
                json.dumps(
                    {"status": "invalid", "errors": [e.as_dict() for e in errors], "scores": {}}
                )
            )
        else:
            print(f"{args.predictions}: {len(errors)} problem(s); nothing scored")
            print("\n".join(str(e) for e in errors))
        return EXIT_INVALID
    scores = challenge.score(aligned)
    if args.json:
        print(
            json.dumps(
                {
                    "status": "ok",
                    "tasks": list(tasks),
                    "frames": len(aligned.truth),
                    "truth_format": truth_format,
                    "scores": _json_value(scores),
                }
            )
        )
        return EXIT_OK
    print(f"{args.predictions} vs {args.truth} ({truth_format}): {len(aligned.truth)} frames")
    for k, v in scores.items():
        if isinstance(v, dict):
            print(f"  {k}: " + ", ".join(f"{a} {x:.4f}" for a, x in v.items()))
        elif isinstance(v, int):
            print(f"  {k:<16} {v}")
        else:
            print(f"  {k:<16} {v:.4f}")
    return EXIT_OK
