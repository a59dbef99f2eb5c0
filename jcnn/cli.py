"""The `jcnn` command: ``train``, ``eval`` and ``summary``.

    jcnn train --config=default[:smoke] --workdir=runs/default [--config.optim.lr=0.1 ...]
    jcnn eval --workdir=runs/default          # one JSON line: step, test_accuracy, params_sha256
    jcnn summary resnet20 --input-shape=32,32,3 [--num-classes=10]

A bad argument exits with status 2 and one line on stderr (``--debug`` shows
the traceback).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys


class UsageError(ValueError):
    """A bad command line: reported in one line, exit status 2."""


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word such as sgd or warmup_cosine


def apply_overrides(config, overrides: list[str]):
    """Applies ``--config.a.b=value`` overrides (values parsed as Python literals)."""
    import difflib

    config.unlock()
    for item in overrides:
        if not item.startswith("--config.") or "=" not in item:
            raise UsageError(f"unrecognised argument {item!r}; overrides look like --config.a.b=1")
        dotted, _, text = item[len("--config.") :].partition("=")
        *parents, leaf = dotted.split(".")
        node = config
        for i, part in enumerate(parents):
            if part not in node:
                close = difflib.get_close_matches(part, list(node.keys()), n=2)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise UsageError(f"unknown config key {'.'.join(parents[: i + 1])!r}.{hint}")
            node = node[part]
        value = _parse_value(text)
        node[leaf] = tuple(value) if isinstance(value, list) else value
    config.lock()
    return config


def _train(args, extra) -> int:
    from jcnn import configs, train

    config = apply_overrides(configs.get(args.config), extra)
    config = configs.validate(config)
    state = train.fit(config, args.workdir)
    print(json.dumps({"step": int(state.step), "workdir": args.workdir}))
    return 0


def _eval(args, extra) -> int:
    if extra:
        raise UsageError(f"unrecognised arguments: {' '.join(extra)}")
    from jcnn import train

    print(json.dumps(train.evaluate(args.workdir)))
    return 0


def _summary(args, extra) -> int:
    if extra:
        raise UsageError(f"unrecognised arguments: {' '.join(extra)}")
    from jcnn import models, summary

    try:
        shape = tuple(int(v) for v in args.input_shape.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise UsageError(f"--input-shape must be H,W,C positive ints, got {args.input_shape!r}")
    model = models.create(args.model, num_classes=args.num_classes)
    print(summary.summarize(model, shape))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jcnn", description="jcnn: CNNs in JAX.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a config (resumes from the workdir)")
    p.add_argument("--config", required=True, help="name or path.py, with optional :variant")
    p.add_argument("--workdir", required=True)
    p.set_defaults(run=_train)
    p = sub.add_parser("eval", help="evaluate the latest checkpoint of a run")
    p.add_argument("--workdir", required=True)
    p.set_defaults(run=_eval)
    p = sub.add_parser("summary", help="per-layer shapes, params, FLOPs, receptive field")
    p.add_argument("model")
    p.add_argument("--input-shape", required=True, help="H,W,C")
    p.add_argument("--num-classes", type=int, default=10)
    p.set_defaults(run=_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    from jcnn import _xla

    _xla.configure()  # before the backend starts; a no-op once it has
    argv = sys.argv[1:] if argv is None else argv
    args, extra = _parser().parse_known_args(argv)
    try:
        return args.run(args, extra)
    except (UsageError, ValueError, TypeError, FileNotFoundError) as err:
        if args.debug:
            raise
        print(f"jcnn {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
