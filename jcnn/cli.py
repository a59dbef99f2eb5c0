"""The `jcnn` command: ``train``, ``eval``, ``summary``, ``bench``, ``export``, ``predict``
and ``viz``.

    jcnn train --config=default[:smoke] --workdir=runs/default [--config.optim.lr=0.1 ...]
    jcnn eval --workdir=runs/default          # one JSON line: step, test_accuracy, params_sha256
    jcnn summary resnet20 --input-shape=32,32,3 [--num-classes=10]
    jcnn bench --config=resnet20 [--steps=24]  # one JSON line: img/s, first step s, peak RSS
    jcnn export --workdir=runs/default --out=model.jax
    jcnn predict --model=model.jax [--top-k=3] [--json] IMAGE...
    jcnn viz activations|conv|filters|features|schedule|curves|confusion --out=FIG.png ...

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
    """Applies ``--config.a.b=value`` overrides (values parsed as Python literals;
    a tuple field also takes comma-separated words, ``--config.data.augment=crop,flip``,
    and an empty value for the empty tuple)."""
    import difflib

    from jcnn.configs._base import with_article

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
        value = tuple(value) if isinstance(value, list) else value
        if isinstance(node.get(leaf), tuple) and isinstance(value, str):
            value = tuple(v for v in value.split(",") if v)  # --config.data.augment=crop,flip
        try:
            node[leaf] = value
        except TypeError as err:  # ml_collections keeps a field's type
            raise UsageError(
                f"config: `{dotted}` must be "
                f"{with_article(type(node[leaf]).__name__)} like its default "
                f"{node[leaf]!r}, got {value!r} ({type(value).__name__})."
            ) from err
    config.lock()
    return config


def _train(args, extra) -> int:
    from jcnn import configs, train

    config = apply_overrides(configs.get(args.config), extra)
    config = configs.validate(config)
    state = train.fit(config, args.workdir)
    print(json.dumps({"step": int(state.step), "workdir": args.workdir}))
    return 0


def _bench(args, extra) -> int:
    from jcnn import bench, configs

    if args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}")
    config = configs.validate(apply_overrides(configs.get(args.config), extra))
    print(json.dumps(bench.bench(config, steps=args.steps)))
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
    if shape[0] in (1, 3, 4) and shape[1] == shape[2] > 4:
        # (3, 224, 224) is a channels-first shape, not a 3 x 224 image of 224 channels.
        raise UsageError(
            f"--input-shape is H,W,C (channels last), got {args.input_shape!r}, which reads as "
            f"C,H,W; for a {shape[1]}x{shape[2]} image with {shape[0]} channel(s) pass "
            f"{shape[1]},{shape[2]},{shape[0]}"
        )
    model = models.create(args.model, num_classes=args.num_classes)
    print(summary.summarize(model, shape))
    return 0


def _no_extra(extra) -> None:
    if extra:
        raise UsageError(f"unrecognised arguments: {' '.join(extra)}")


def _export(args, extra) -> int:
    _no_extra(extra)
    from jcnn.interop import export_workdir

    platforms = tuple(p for p in args.platforms.split(",") if p)
    path = export_workdir(args.workdir, args.out, platforms=platforms)
    print(json.dumps({"out": str(path), "bytes": path.stat().st_size}))
    return 0


def _predict(args, extra) -> int:
    _no_extra(extra)
    from jcnn.interop._loader import format_predictions, load_exported, read_image

    if args.top_k < 1:
        raise UsageError(f"--top-k must be >= 1, got {args.top_k}")
    model = load_exported(args.model)
    images = [read_image(path) for path in args.images]
    for path, top in zip(args.images, model.predict(images, top_k=args.top_k), strict=True):
        if args.json:
            ranked = [{"index": i, "class": name, "probability": p} for i, name, p in top]
            print(json.dumps({"image": path, "top": ranked}))
        else:
            print(format_predictions(path, top))
    return 0


def _viz(args, extra) -> int:
    _no_extra(extra)
    from jcnn import viz

    figure = args.figure
    if figure == "activations":
        path = viz.plot_activations(args.out)
    elif figure == "conv":
        path = viz.plot_conv_arithmetic(args.out, n=args.n, k=args.k, p=args.p, s=args.s, d=args.d)
    elif figure == "filters":
        path = viz.plot_filters(args.workdir, args.out)
    elif figure == "features":
        path = viz.plot_feature_maps(args.workdir, args.out, index=args.index)
    elif figure == "schedule":
        path = viz.plot_schedule(args.config, args.out)
    elif figure == "curves":
        path = viz.plot_training_curves(args.workdirs, args.out)
    else:
        path = viz.plot_confusion(args.workdir, args.out)
    print(path)
    return 0


def _viz_parser(sub) -> None:
    p = sub.add_parser("viz", help="pictures as PNG files (see jcnn viz -h)")
    figs = p.add_subparsers(dest="figure", required=True)

    def figure(name, help_text):
        f = figs.add_parser(name, help=help_text)
        f.add_argument("--out", default=f"{name}.png", help="PNG path (default: NAME.png)")
        f.set_defaults(run=_viz)
        return f

    figure("activations", "activation functions and their derivatives")
    f = figure("conv", "how padding, stride and dilation move a kernel")
    f.add_argument("--n", type=int, required=True, help="input size")
    f.add_argument("--k", type=int, required=True, help="kernel size")
    f.add_argument("--p", type=int, default=0, help="padding on each side")
    f.add_argument("--s", type=int, default=1, help="stride")
    f.add_argument("--d", type=int, default=1, help="dilation")
    for name, help_text in (
        ("filters", "the first conv layer's learned filters"),
        ("features", "feature maps of one test image"),
        ("confusion", "confusion matrix on the test split"),
    ):
        f = figure(name, help_text)
        f.add_argument("--workdir", required=True)
        if name == "features":
            f.add_argument("--index", type=int, default=0, help="test image index")
    f = figure("schedule", "the learning-rate schedule of a config")
    f.add_argument("--config", required=True, help="name or path.py, with optional :variant")
    f = figure("curves", "training curves of runs, overlaid")
    f.add_argument("workdirs", nargs="+")


class _Parser(argparse.ArgumentParser):
    """argparse that raises `UsageError` (one line, exit 2) instead of printing usage."""

    def error(self, message: str):
        err = UsageError(f"{message} (see {self.prog} --help)")
        err.prog = self.prog
        raise err


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jcnn", description="jcnn: CNNs in JAX.")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks (anywhere on the command line)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    overrides = (
        "Any key of the config can be overridden: --config.KEY=VALUE, nested keys "
        "dotted, values as Python literals, e.g. --config.num_epochs=3 "
        "--config.optim.lr=0.1 --config.data.augment=crop,flip (see jcnn/configs/_base.py "
        "for every key and its default)."
    )
    p = sub.add_parser("train", help="train a config (resumes from the workdir)", epilog=overrides)
    p.add_argument("--config", required=True, help="name or path.py, with optional :variant")
    p.add_argument("--workdir", required=True)
    p.set_defaults(run=_train)
    p = sub.add_parser("eval", help="evaluate the latest checkpoint of a run")
    p.add_argument("--workdir", required=True)
    p.set_defaults(run=_eval)
    p = sub.add_parser(
        "bench",
        help="train-step and eval throughput of a config (one JSON line)",
        epilog=overrides,
    )
    p.add_argument("--config", required=True, help="name or path.py, with optional :variant")
    p.add_argument(
        "--steps",
        type=int,
        default=20,
        help="timed steps after the compiling call, rounded up to a multiple of the "
        "config's steps per call (default: %(default)s)",
    )
    p.set_defaults(run=_bench)
    p = sub.add_parser("summary", help="per-layer shapes, params, FLOPs, receptive field")
    p.add_argument("model")
    p.add_argument("--input-shape", required=True, help="H,W,C")
    p.add_argument("--num-classes", type=int, default=10, help="default: %(default)s")
    p.set_defaults(run=_summary)
    p = sub.add_parser("export", help="write a run's forward pass as one file (jax.export)")
    p.add_argument("--workdir", required=True)
    p.add_argument("--out", required=True, help="output file, e.g. model.jax")
    p.add_argument(
        "--platforms",
        default="cpu,cuda,tpu",
        help="comma-separated lowering platforms (default: %(default)s)",
    )
    p.set_defaults(run=_export)
    p = sub.add_parser("predict", help="top classes of images under an exported model")
    p.add_argument("--model", required=True, help="a file written by jcnn export")
    p.add_argument("--top-k", type=int, default=3, help="default: %(default)s")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.set_defaults(run=_predict)
    _viz_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from jcnn import _xla

    _xla.configure()  # before the backend starts; a no-op once it has
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]  # valid before or after the subcommand
    command = "jcnn"
    try:
        args, extra = _parser().parse_known_args(argv)
        command = f"jcnn {args.command}"
        return args.run(args, extra)
    except (UsageError, ValueError, TypeError, FileNotFoundError) as err:
        if debug:
            raise
        message = " ".join(str(err).split("\n")[0].split()) or type(err).__name__
        print(f"{getattr(err, 'prog', command)}: error: {message}", file=sys.stderr)
        return 2
    except FloatingPointError as err:  # a diverged run: not a usage error
        if debug:
            raise
        print(f"{command}: error: {err}", file=sys.stderr)
        return 1
    except RuntimeError as err:
        loop = sys.modules.get("jcnn.train.loop")  # loaded if a run could have started
        if debug or loop is None or not isinstance(err, loop.WorkdirInUseError):
            raise
        print(f"{command}: error: {err}", file=sys.stderr)  # another run holds the workdir
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C during training, or one elsewhere
        print(f"{command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
