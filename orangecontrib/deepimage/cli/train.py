"""`deepimage train | evaluate | export`: train a classifier, cross-validate it, export it.

Registered into cli.py's parser with ``register(commands)``. Everything heavy
(torch, Orange) is imported inside the commands, so `deepimage embed` starts as
fast as before. Exit codes: 0 done, 1 nothing usable, 2 wrong arguments,
130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import TextIO

from .core.devices import DEVICES

__all__ = ["register"]

MODES = ("fine-tune", "last-layer", "scratch")


def _training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", metavar="DIR",
                        help="a folder with one subfolder of images per class")
    parser.add_argument("-m", "--model", default="squeezenet",
                        help="squeezenet (default), vgg16, vgg19 or inception-v3")
    parser.add_argument("--mode", default="fine-tune", choices=MODES,
                        help="fine-tune (default): last layer first, then the whole network; "
                             "last-layer: only the last layer, on embeddings (fast); "
                             "scratch: random initial weights")
    parser.add_argument("--epochs", type=int, default=None, metavar="N",
                        help="most epochs (early stopping may end sooner; default: preset)")
    parser.add_argument("--image-size", type=int, default=None, metavar="N",
                        help="train at N x N pixels (default: from the images, 1.5 x their "
                             "median side, at least 64 and at most the network's own size; "
                             "last-layer: the network's own size)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N")
    parser.add_argument("--lr", type=float, default=None, metavar="X",
                        help="learning rate (last-layer: the last layer's; default: the "
                             "network's preset)")
    parser.add_argument("--head-epochs", type=int, default=None, metavar="N",
                        help="fine-tune: epochs of the last layer alone first")
    parser.add_argument("--patience", type=int, default=None, metavar="N",
                        help="stop after N epochs without a better validation loss")
    parser.add_argument("--validation", type=float, default=None, metavar="F",
                        help="fraction of images held out for early stopping (default 0.2)")
    parser.add_argument("--no-flip", action="store_true",
                        help="no random horizontal flips (for text, digits, ...)")
    parser.add_argument("--device", default="auto", choices=DEVICES)
    parser.add_argument("--seed", type=int, default=0, metavar="N")
    parser.add_argument("--random-weights", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress (a bar on a terminal, a line per epoch otherwise)")


def register(commands) -> None:
    """Add the train, evaluate and export sub-commands to cli.py's subparsers."""
    train = commands.add_parser(
        "train", help="train an image classifier on class folders",
        description="Train (fine-tune) a network on DIR's subfolders, one per class, and "
                    "write a model Orange's Load Model reads.")
    _training_arguments(train)
    train.add_argument("-o", "--output", metavar="FILE.pkcls",
                       help="where to write the model (Orange's .pkcls pickle)")
    train.add_argument("--nproc", type=int, default=None, metavar="N",
                       help="train in N processes with DistributedDataParallel on this "
                            "computer: one per GPU (NCCL), or N on the CPU (gloo); the same "
                            "as `torchrun --standalone --nproc-per-node N -m "
                            "orangecontrib.deepimage.cli train ...`")
    train.set_defaults(run=cmd_train, parser=train)

    evaluate = commands.add_parser(
        "evaluate", help="cross-validate the classifier (a headless Test & Score)",
        description="K-fold cross-validation of the image classifier on DIR's class "
                    "folders with Orange's CrossValidation; prints CA, F1 and AUC per "
                    "method and the confusion matrix.")
    _training_arguments(evaluate)
    evaluate.add_argument("--folds", type=int, default=5, metavar="K")
    evaluate.add_argument("--compare-logreg", action="store_true",
                          help="also logistic regression on the network's embeddings "
                               "(as Image Embedder makes them), on the same folds")
    evaluate.add_argument("--json", action="store_true",
                          help='print one JSON object {method: {"CA", "F1", "AUC"}} on '
                               'stdout (everything else goes to stderr)')
    evaluate.set_defaults(run=cmd_evaluate)

    export = commands.add_parser(
        "export", help="export a trained model to ONNX",
        description="Write a model trained by `deepimage train` (or Orange) as one ONNX "
                    "file: input 'images' (uint8 N x H x W x 3 RGB), outputs 'embedding' "
                    "and 'probabilities'.")
    export.add_argument("model", metavar="MODEL.pkcls")
    export.add_argument("--onnx", required=True, metavar="OUT.onnx")
    export.set_defaults(run=cmd_export)


def _error(message: str) -> int:
    print(f"deepimage: error: {message}", file=sys.stderr)
    return 2


def _learner(args: argparse.Namespace):
    from .learner import ImageClassifierLearner
    options = {}
    if args.head_epochs is not None:
        options["head_epochs"] = args.head_epochs
    if args.no_flip:
        options["flip"] = False
    return ImageClassifierLearner(
        args.model, mode=args.mode, epochs=args.epochs, image_size=args.image_size,
        batch_size=args.batch_size, learning_rate=args.lr, patience=args.patience,
        validation_fraction=args.validation, seed=args.seed, device=args.device,
        random_weights=args.random_weights, **options)


def _image_table(directory: str):
    from .core.images import find_images
    from .data import image_table
    if not os.path.isdir(directory):
        raise ValueError(f"no such folder: {directory}")
    paths = find_images(directory)
    if not paths:
        raise ValueError(f"no images found in {directory}")
    table = image_table(paths, root=directory)
    if table.domain.class_var is None:
        raise ValueError(f"{directory} needs one subfolder of images per class (at least "
                         f"two); the subfolder names become the classes")
    return table


def _epoch_line(record) -> str:
    val = (f"val loss {record.val_loss:.4f} acc {record.val_accuracy:.3f}"
           if record.val_loss == record.val_loss else "no validation")
    return (f"epoch {record.epoch:3d} ({record.phase}): train loss {record.train_loss:.4f} "
            f"acc {record.train_accuracy:.3f}, {val}, {record.seconds:.1f} s")


class TrainingProgress:
    """How far training has got, on ``stream`` (stderr): on a terminal a tqdm bar (the
    run's share done, the fold, the last epoch, the time) with a line per finished fold
    (and, with ``epoch_lines``, per epoch) above it; elsewhere (a log file, a pipe) a line
    per epoch and per fold; nothing when ``quiet``. Give ``progress`` and ``epoch`` to the
    learner as its callbacks; ``folds`` > 0 for cross-validation (``start_fold``)."""

    def __init__(self, stream: TextIO, quiet: bool = False, folds: int = 0,
                 epoch_lines: bool = True, bar: "bool | None" = None):
        self.stream, self.quiet, self.folds = stream, quiet, folds
        self.use_bar = (not quiet) and (stream.isatty() if bar is None else bar)
        self.epoch_lines = epoch_lines or not self.use_bar
        self.fold, self.last, self.records = 0, None, []
        self.fold_start = time.perf_counter()
        self.bar = None  # the tqdm bar, from the first thing to show until close()

    def _write_line(self, text: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:  # tqdm clears the bar, writes the line and redraws it
            self.bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def _draw(self, share: "float | None" = None, now: bool = True) -> None:
        """Redraw the bar; ``share``: how much of this fold (or run) is done; ``now``
        False: only if tqdm's interval since the last drawing has passed."""
        if not self.use_bar:
            return
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=max(self.folds, 1), file=self.stream, dynamic_ncols=True,
                            bar_format="{percentage:3.0f}%|{bar}| {desc}  {elapsed}")
        if share is not None:
            self.bar.n = max(self.fold - 1, 0) + min(share, 1.0)
        parts = [f"fold {max(self.fold, 1)}/{self.folds}"] if self.folds else []
        if self.last is not None:
            parts.append(f"epoch {self.last.epoch} ({self.last.phase})")
            if self.last.val_accuracy == self.last.val_accuracy:
                parts.append(f"val acc {self.last.val_accuracy:.3f}")
        self.bar.set_description_str("  ".join(parts), refresh=False)
        if now:
            self.bar.refresh()
        else:
            self.bar.update(0)  # draws when tqdm's mininterval has passed

    def start_fold(self, fold: int) -> None:
        """Fold ``fold`` (1-based) of ``folds`` starts."""
        self.fold, self.last, self.records = fold, None, []
        self.fold_start = time.perf_counter()
        self._draw(0.0)

    def end_fold(self) -> None:
        """The fold has finished: a line with its time and its best epoch."""
        seconds = time.perf_counter() - self.fold_start
        self._draw(1.0)
        scored = [r for r in self.records if r.val_loss == r.val_loss]
        best = min(scored, key=lambda r: r.val_loss) if scored else None
        summary = (f": best epoch {best.epoch} of {len(self.records)}, validation accuracy "
                   f"{best.val_accuracy:.3f}" if best is not None else "")
        self._write_line(f"fold {self.fold}/{self.folds} trained in {seconds:.0f} s{summary}")

    def progress(self, done: int, total: int) -> None:
        if self.quiet or total <= 0:
            return
        self._draw(done / total, now=False)

    def epoch(self, record) -> None:
        self.last = record
        self.records.append(record)
        if self.epoch_lines:
            prefix = f"fold {self.fold}/{self.folds}, " if self.folds else ""
            self._write_line(prefix + _epoch_line(record))
        else:
            self._draw()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _prepare(args: argparse.Namespace):
    """(learner, table) or raises ValueError/WeightsUnavailable with a message for people.
    Without --image-size, the size is chosen here from all the images (so every fold
    trains at the same size) and said on stderr."""
    import numpy as np

    from .core.models import UnknownModel
    from .core.presets import image_sides, size_for_images
    from .data import image_paths
    try:
        learner, table = _learner(args), _image_table(args.directory)
    except (UnknownModel, TypeError) as exc:
        raise ValueError(str(exc)) from None
    if args.image_size is None and learner.mode != "last-layer":
        paths = image_paths(table)
        learner.image_size = size_for_images(paths, learner.model)
        if not args.quiet:
            sides = image_sides(paths)
            seen = f"their median side is {int(np.median(sides))} px" if sides else \
                "their sizes could not be read"
            print(f"Training at {learner.image_size} px, chosen from the images ({seen}); "
                  f"--image-size N to change.", file=sys.stderr)
    return learner, table


def _argv(parser: argparse.ArgumentParser, args: argparse.Namespace,
          leave_out: "tuple[str, ...]" = ()) -> list[str]:
    """The command line that gives ``args`` again (options left at their default are left
    out), for the processes `--nproc` starts."""
    argv, positional = [], []
    for action in parser._actions:
        if action.dest in leave_out or action.dest == "help":
            continue
        value = getattr(args, action.dest, None)
        if not action.option_strings:
            positional.append(str(value))
        elif isinstance(action, argparse._StoreTrueAction):
            argv += [action.option_strings[-1]] if value else []
        elif value is not None and value != action.default:
            argv += [action.option_strings[-1], str(value)]
    return argv + ["--", *positional]


def _launch(args: argparse.Namespace) -> int:
    """`deepimage train --nproc N`: torchrun (torch.distributed.run) starts N processes
    of the same command on this computer; its exit code is ours."""
    import subprocess
    if args.nproc < 1:
        return _error("--nproc must be at least 1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", str(args.nproc), "-m", "orangecontrib.deepimage.cli",
               "train", *_argv(args.parser, args, leave_out=("nproc",))]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.nproc)))
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        print("deepimage: interrupted; nothing written.", file=sys.stderr)
        return 130


def cmd_train(args: argparse.Namespace) -> int:
    from .core import distributed
    if getattr(args, "nproc", None) and not distributed.launched():
        return _launch(args)
    try:
        parallel = distributed.init_from_env(args.device)  # None unless started by torchrun
    except ValueError as exc:
        return _error(str(exc))
    try:
        return _train(args, parallel)
    finally:
        distributed.close()


def _train(args: argparse.Namespace, parallel) -> int:
    """One process's training; with ``parallel`` (torchrun) rank 0 alone prints and writes."""
    import pickle
    import warnings

    from .core.weights import WeightsUnavailable
    from .learner import count_of, skipped_message
    if args.output and not args.output.endswith(".pkcls"):
        return _error("the model file must end in .pkcls (Orange's Load Model reads those)")
    main = parallel is None or parallel.is_main
    if parallel is not None and main:
        print(f"Distributed training: world size {parallel.world_size} ({parallel.backend}, "
              f"one process per {'GPU' if parallel.backend == 'nccl' else 'CPU share'}).",
              file=sys.stderr, flush=True)
    args.quiet = args.quiet or not main  # under torchrun rank 0 alone shows progress
    progress = TrainingProgress(sys.stderr, quiet=args.quiet)
    try:
        learner, table = _prepare(args)
        learner.progress_callback, learner.epoch_callback = progress.progress, progress.epoch
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                model = learner(table)
            finally:
                progress.close()
    except (ValueError, WeightsUnavailable) as exc:
        return _error(str(exc)) if main else 2
    except KeyboardInterrupt:
        if main:
            print("deepimage: interrupted; nothing written.", file=sys.stderr)
        return 130
    if not main:
        return 0
    # the learner's warning names three unreadable images; model.skipped has them all
    summarised = skipped_message(model.skipped, ("was", "were"), "left out of training")
    for warning in caught:
        if issubclass(warning.category, UserWarning) and str(warning.message) != summarised:
            print(f"deepimage: warning: {warning.message}", file=sys.stderr)
    for skipped in model.skipped:
        print(f"deepimage: warning: left out {skipped.source}: {skipped.reason}",
              file=sys.stderr)
    unread = (f"; {count_of(len(model.skipped), 'image')} could not be read"
              if model.skipped else "")
    best = model.best
    val = (f"validation accuracy {best.val_accuracy:.3f} (loss {best.val_loss:.4f})"
           if best is not None and best.val_loss == best.val_loss else "no validation split")
    print(f"Trained {model.spec.display_name} ({model.config.mode}, {model.image_size} px) on "
          f"{count_of(sum(model.class_counts), 'image')} of "
          f"{count_of(len(model.class_values), 'class', 'classes')} in "
          f"{model.training_seconds:.1f} s: best epoch {model.best_epoch} of "
          f"{len(model.history)}, {val}"
          f"{'; stopped early' if model.stopped_early else ''}{unread}.", file=sys.stderr)
    if args.output:
        tmp = args.output + ".part"
        with open(tmp, "wb") as f:
            pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, args.output)
        print(f"Wrote {args.output}", file=sys.stderr)
    return 0


def _scores(results, index: int) -> dict:
    import numpy as np
    from Orange.evaluation import AUC, CA, F1
    out = {}
    # F1 as Test & Score shows it by default ("average over classes"): weighted by class size
    for name, score in (("CA", CA), ("F1", lambda r: F1(r, average="weighted")), ("AUC", AUC)):
        try:
            out[name] = float(np.atleast_1d(score(results))[index])
        except Exception:  # e.g. AUC with a class missing from a fold
            out[name] = None
    return out


def cmd_evaluate(args: argparse.Namespace) -> int:
    import warnings

    import numpy as np
    from Orange.evaluation import CrossValidation

    from .core.weights import WeightsUnavailable
    if args.folds < 2:
        return _error("--folds must be at least 2")
    log = sys.stderr
    # on a terminal a bar and a line per fold; elsewhere also a line per epoch
    progress = TrainingProgress(log, quiet=args.quiet, folds=args.folds, epoch_lines=False)
    try:
        learner, table = _prepare(args)
        learners = [learner]
        if args.compare_logreg:
            from Orange.classification import LogisticRegressionLearner

            from .core.embed import Embedder
            from .data import embeddings_table, image_paths
            if not args.quiet:
                print(f"Embedding {len(table)} images with {learner.config().model} ...",
                      file=log)
            embedder = Embedder(args.model, device=args.device,
                                random_weights=args.random_weights)
            table, _ = embeddings_table(table, embedder.embed(image_paths(table)))
            learners.append(LogisticRegressionLearner())
        if not args.quiet:
            print(f"{args.folds}-fold cross-validation of "
                  f"{', '.join(l.name for l in learners)} on {len(table)} images ...", file=log)
        learner.progress_callback, learner.epoch_callback = progress.progress, progress.epoch
        parts = [0]

        def fold_finished(_share: float) -> None:
            # CrossValidation calls this after each learner of each fold, fold by fold
            # (and once more at the end)
            parts[0] += 1
            if parts[0] % len(learners) == 0 and parts[0] <= args.folds * len(learners):
                progress.end_fold()
                if parts[0] < args.folds * len(learners):
                    progress.start_fold(parts[0] // len(learners) + 1)

        progress.start_fold(1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lbfgs convergence notes and the like
            try:
                results = CrossValidation(k=args.folds, stratified=True,
                                          random_state=args.seed)(
                    table, learners, callback=fold_finished)
            finally:
                progress.close()
    except (ValueError, WeightsUnavailable) as exc:
        return _error(str(exc))
    except KeyboardInterrupt:
        print("deepimage: interrupted.", file=log)
        return 130
    report, failed = {}, False
    for i, method in enumerate(learners):
        if results.failed[i]:
            print(f"{method.name} failed: {results.failed[i]}", file=log)
            failed = True
            continue
        report[method.name] = _scores(results, i)
    text = log if args.json else sys.stdout
    width = max(len(name) for name in report) if report else 10
    print(f"{'method'.ljust(width)}  CA     F1     AUC", file=text)
    for name, scores in report.items():
        cells = [f"{scores[k]:.3f}" if scores[k] is not None else "  -  "
                 for k in ("CA", "F1", "AUC")]
        print(f"{name.ljust(width)}  {'  '.join(cells)}", file=text)
    values = list(table.domain.class_var.values)
    actual = results.actual.astype(int)
    for i, method in enumerate(learners):
        if results.failed[i]:
            continue
        matrix = np.zeros((len(values), len(values)), int)
        np.add.at(matrix, (actual, results.predicted[i].astype(int)), 1)
        print(f"\nConfusion matrix, {method.name} (rows: actual, columns: predicted)",
              file=text)
        cell = max(max(len(v) for v in values), len(str(matrix.max()))) + 1
        print(" " * cell + "".join(v.rjust(cell) for v in values), file=text)
        for value, row in zip(values, matrix):
            print(value.rjust(cell) + "".join(str(n).rjust(cell) for n in row), file=text)
    if args.json:
        print(json.dumps(report))
    return 1 if failed and not report else 0


def cmd_export(args: argparse.Namespace) -> int:
    import pickle

    from .core.onnx import export_classifier_onnx
    from .learner import ImageClassifierModel
    try:
        with open(args.model, "rb") as f:
            model = pickle.load(f)
    except FileNotFoundError:
        return _error(f"no such file: {args.model}")
    except Exception as exc:
        return _error(f"{args.model} is not a model file ({type(exc).__name__}: {exc})")
    if not isinstance(model, ImageClassifierModel):
        return _error(f"{args.model} holds a {type(model).__name__}, not an image classifier "
                      f"trained by `deepimage train` or the Trainer widget")
    path = export_classifier_onnx(model.net, args.onnx, image_size=model.image_size,
                                  classes=model.class_values, base_model=model.spec.name)
    print(f"Wrote {path}: input 'images' uint8 N x {model.image_size} x {model.image_size} x 3 "
          f"RGB; outputs 'embedding' (N x {model.spec.embedding_dim}) and 'probabilities' "
          f"(N x {len(model.class_values)}: {', '.join(model.class_values)}).", file=sys.stderr)
    return 0
