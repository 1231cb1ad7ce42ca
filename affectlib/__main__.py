"""Command line: ``python -m affectlib {reproduce,audit,generate,train,predict,evaluate} ...``
(``--help`` on each)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _reproduce(argv: list[str]) -> int:
    from . import reproduce  # deferred, as every command's: only the command run is imported

    ap = argparse.ArgumentParser(
        prog="python -m affectlib reproduce",
        description="Run notebooks/NN_*.ipynb in order with papermill; executed copies, tables and "
        "figures go under --out.",
    )
    ap.add_argument("--profile", default="cpu", help="smoke | cpu | paper (default: cpu)")
    ap.add_argument("--only", default="", help="comma-separated notebook numbers, e.g. 01,03")
    ap.add_argument("--out", default="results", help="output folder (default: results)")
    ap.add_argument(
        "-p",
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a parameter of every notebook that has it, e.g. -p data_root=/data/abaw "
        "-p format=abaw-mtl (values are Python literals, or plain strings)",
    )
    ap.add_argument(
        "--refresh-stored",
        action="store_true",
        help="instead: execute the stored notebooks in place on the smoke profile (the outputs "
        "nbval checks)",
    )
    args = ap.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()] or None
    try:
        if args.refresh_stored:
            reproduce.refresh_stored(reproduce.find_notebooks(only=only))
            return 0
        params = dict(reproduce.parse_parameter(p) for p in args.parameter)
        reproduce.reproduce(args.profile, only, args.out, parameters=params)
    except (reproduce.NotebookFailed, ValueError, KeyError, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"reproduce: {msg}", file=sys.stderr)
        return 1
    return 0


def _generate(argv: list[str]) -> int:
    from . import profiles  # deferred: the command's own modules only
    from .data.generate import generate  # deferred: the command's own modules only

    ap = argparse.ArgumentParser(
        prog="python -m affectlib generate",
        description="Write the embedded default data set in the real data sets' formats.",
    )
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--profile", default="cpu", help="smoke | cpu | paper (default: cpu)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="keep the folder when its manifest says it was made with these settings",
    )
    args = ap.parse_args(argv)
    try:
        profile = profiles.get(args.profile)
    except KeyError as e:
        print(f"generate: {e.args[0]}", file=sys.stderr)
        return 2
    try:
        if args.reuse:
            from .data.generate import ensure  # deferred: the command's own modules only

            ensure(profile, args.seed, args.out)
            manifest = json.loads((Path(args.out) / "manifest.json").read_text())
        else:
            manifest = generate(args.out, profile, args.seed)
    except FileExistsError as e:
        print(f"generate: {e}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{k} {v}" for k, v in manifest["counts"].items())
    print(f"wrote the embedded data set ({args.profile}, seed {args.seed}) to {args.out}: {counts}")
    return 0


def _audit(argv: list[str]) -> int:
    from .data import audit  # deferred: the audit runs without torch

    return audit.main(argv)


def _train(argv: list[str]) -> int:
    from .cli_train import main as train_main  # deferred: torch, for this command only

    return train_main(argv)


def _predict(argv: list[str]) -> int:
    from .cli_challenge import predict_main  # deferred: torch, for this command only

    return predict_main(argv)


def _evaluate(argv: list[str]) -> int:
    from .cli_challenge import evaluate_main  # deferred: the command's own modules only

    return evaluate_main(argv)


def _index(argv: list[str]) -> int:
    from . import results_index  # deferred: the command's own modules only

    ap = argparse.ArgumentParser(
        prog="python -m affectlib index",
        description="Rewrite results/README.md, the index of what is reproduced, from results/.",
    )
    ap.add_argument("--results", default="results", help="the results folder (default: results)")
    args = ap.parse_args(argv)
    print(f"wrote {results_index.write_index(args.results)}")
    return 0


COMMANDS = {
    "reproduce": _reproduce,
    "index": _index,
    "audit": _audit,
    "generate": _generate,
    "train": _train,
    "predict": _predict,
    "evaluate": _evaluate,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(
            "usage: python -m affectlib {" + ",".join(COMMANDS) + "} [options]\n"
            "  reproduce  run the notebooks headless (papermill) and write results/\n"
            "  index      rewrite results/README.md, the index of what is reproduced\n"
            "  audit      validate an annotation file in a real format and summarise it\n"
            "  generate   write the embedded default data set\n"
            "  train      train one method (python -m affectlib train --help)\n"
            "  predict    write a trained run's predictions in the ABAW submission format\n"
            "  evaluate   score a predictions file against the ground truth (challenge metrics)\n",
            file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout,
        )
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
