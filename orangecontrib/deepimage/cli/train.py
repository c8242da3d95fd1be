"""`deepimage train | export`: train an image classifier, export it to ONNX.

``training_arguments`` and ``prepare`` are shared with evaluate.py. Everything heavy
(torch, Orange) is imported inside the commands, so `deepimage embed` starts as
fast as before. Exit codes: 0 done, 1 nothing usable, 2 wrong arguments,
130 interrupted.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..core.devices import DEVICES
from ..core.models import models_help
from ..core.presets import MODES
from .common import fail, load_model, warn
from .progress import TrainingProgress

__all__ = ["register", "training_arguments", "prepare"]


def training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", metavar="DIR",
                        help="a folder with one subfolder of images per class")
    parser.add_argument("-m", "--model", default="squeezenet", help=models_help())
    parser.add_argument("--weights", metavar="FILE", default=None,
                        help="pretrained weights to start from instead of the standard file "
                             "(a PyTorch state dict of the network)")
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
                        help="no random horizontal flips (for text, digits, ...; the "
                             "fine-tune preset has none)")
    parser.add_argument("--flip", action="store_true",
                        help="random horizontal flips (for photos of things whose mirror "
                             "image is the same thing)")
    parser.add_argument("--no-tta", action="store_true",
                        help="predict each image once, not as the mean of 5 views (as it is "
                             "and shifted 5%% each way: the default)")
    parser.add_argument("--time-budget", type=float, default=None, metavar="MIN",
                        help="train for at most MIN minutes (each fold, in evaluate): the "
                             "whole network trains for the epochs that fit, and the best "
                             "model so far is kept; too short for one epoch: the last "
                             "layer alone")
    parser.add_argument("--device", default="auto", choices=DEVICES)
    parser.add_argument("--seed", type=int, default=0, metavar="N")
    parser.add_argument("--random-weights", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress (a bar on a terminal, a line per epoch otherwise)")


def register(commands) -> None:
    """Add the train and export sub-commands to the `deepimage` subparsers."""
    train = commands.add_parser(
        "train", help="train an image classifier on class folders",
        description="Train (fine-tune) a network on DIR's subfolders, one per class, and "
                    "write a model Orange's Load Model reads.")
    training_arguments(train)
    train.add_argument("-o", "--output", metavar="FILE.pkcls",
                       help="where to write the model (Orange's .pkcls pickle)")
    train.add_argument("--nproc", type=int, default=None, metavar="N",
                       help="train in N processes with DistributedDataParallel on this "
                            "computer: one per GPU (NCCL), or N on the CPU (gloo); the same "
                            "as `torchrun --standalone --nproc-per-node N -m "
                            "orangecontrib.deepimage.cli train ...`")
    train.set_defaults(run=cmd_train, parser=train)

    export = commands.add_parser(
        "export", help="export a trained model to ONNX",
        description="Write a model trained by `deepimage train` (or Orange) as one ONNX "
                    "file: input 'images' (uint8 N x H x W x 3 RGB), outputs 'embedding' "
                    "and 'probabilities'.")
    export.add_argument("model", metavar="MODEL.pkcls")
    export.add_argument("--onnx", required=True, metavar="OUT.onnx")
    export.set_defaults(run=cmd_export)


def _learner(args: argparse.Namespace):
    from ..learner import ImageClassifierLearner
    options = {}
    if args.head_epochs is not None:
        options["head_epochs"] = args.head_epochs
    if args.no_flip:
        options["flip"] = False
    if args.weights:
        options["weights_file"] = args.weights
    if args.flip and not args.no_flip:
        options["flip"] = True
    if args.no_tta:
        options["tta"] = 1
    if args.time_budget is not None:
        if not args.time_budget > 0:
            raise ValueError("--time-budget must be above 0 minutes")
        options["time_budget"] = 60 * args.time_budget
    return ImageClassifierLearner(
        args.model, mode=args.mode, epochs=args.epochs, image_size=args.image_size,
        batch_size=args.batch_size, learning_rate=args.lr, patience=args.patience,
        validation_fraction=args.validation, seed=args.seed, device=args.device,
        random_weights=args.random_weights, **options)


def _image_table(directory: str):
    from ..core.images import find_images
    from ..data import image_table
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


def prepare(args: argparse.Namespace):
    """(learner, table) or raises ValueError/WeightsUnavailable with a message for people.
    Without --image-size, the size is chosen here from all the images (so every fold
    trains at the same size) and said on stderr."""
    from ..core.models import UnknownModel
    from ..core.presets import fit_to_images, median_side
    from ..data import image_paths
    try:
        learner, table = _learner(args), _image_table(args.directory)
    except (UnknownModel, TypeError) as exc:
        raise ValueError(str(exc)) from None
    if args.image_size is None and learner.mode != "last-layer" \
            and args.time_budget is None:  # with a budget each run chooses (and may lower)
        paths = image_paths(table)
        config, median = learner.config(), median_side(paths)  # headers read once
        fitted = fit_to_images(config, paths, median)
        learner.image_size, learner.epochs = fitted.image_size, fitted.epochs
        if not args.quiet:
            seen = f"their median side is {int(median)} px" if median is not None else \
                "their sizes could not be read"
            epochs = f", {fitted.epochs} of {config.epochs} epochs (small images)" \
                if fitted.epochs != config.epochs else ""
            print(f"Training at {learner.image_size} px{epochs}, chosen from the images "
                  f"({seen}); --image-size N to change.", file=sys.stderr)
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
        return fail("--nproc must be at least 1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", str(args.nproc), "-m", "orangecontrib.deepimage.cli",
               "train", *_argv(args.parser, args, leave_out=("nproc",))]
    from ..core.distributed import launch_env
    env = launch_env(args.nproc)  # CPU threads shared; USE_LIBUV=0 on Windows
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        print("deepimage: interrupted; nothing written.", file=sys.stderr)
        return 130


def cmd_train(args: argparse.Namespace) -> int:
    from ..core import distributed
    if getattr(args, "nproc", None) and not distributed.launched():
        return _launch(args)
    try:
        parallel = distributed.init_from_env(args.device)  # None unless started by torchrun
    except ValueError as exc:
        return fail(str(exc))
    try:
        code = _train(args, parallel)
    except BaseException:
        distributed.close(synchronize=False)  # the others may never reach a barrier
        raise
    distributed.close(synchronize=code == 0)
    return code


def _train(args: argparse.Namespace, parallel) -> int:
    """One process's training; with ``parallel`` (torchrun) rank 0 alone prints and writes."""
    import warnings

    from ..core.weights import WeightsUnavailable
    from ..learner import count_of, skipped_message
    if args.output and not args.output.endswith(".pkcls"):
        return fail("the model file must end in .pkcls (Orange's Load Model reads those)")
    main = parallel is None or parallel.is_main
    if parallel is not None and main:
        print(f"Distributed training: world size {parallel.world_size} ({parallel.backend}, "
              f"one process per {'GPU' if parallel.on_gpu else 'CPU share'}).",
              file=sys.stderr, flush=True)
    args.quiet = args.quiet or not main  # under torchrun rank 0 alone shows progress
    progress = TrainingProgress(sys.stderr, quiet=args.quiet)
    try:
        learner, table = prepare(args)
        learner.progress_callback, learner.epoch_callback = progress.progress, progress.epoch
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                model = learner(table)
            finally:
                progress.close()
    except (ValueError, WeightsUnavailable) as exc:
        return fail(str(exc)) if main else 2
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
            warn(str(warning.message))
    for skipped in model.skipped:
        warn(f"left out {skipped.source}: {skipped.reason}")
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
    from ..trainer_job import baseline_sentence
    for line in (baseline_sentence(model), model.budget_note):
        if line:
            print(line, file=sys.stderr)
    if args.output:
        return _write_model(model, args.output)
    return 0


def _write_model(model, path: str) -> int:
    """Pickle the model to ``path`` whole (no .part left on failure); when that fails,
    to the temporary folder, so the training is not lost."""
    import pickle
    import tempfile
    from ..core.atomic import atomic_path
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)
    except OSError as exc:
        handle, rescue = tempfile.mkstemp(prefix="unsaved-model-", suffix=".pkcls")
        with os.fdopen(handle, "wb") as f:
            pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)
        return fail(f"could not write {path} ({exc.strerror or exc}); the model is in "
                    f"{rescue}", 1)
    print(f"Wrote {path}", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..core.onnx import export_classifier_onnx
    from ..learner import ImageClassifierModel
    try:
        model = load_model(args.model)
    except ValueError as exc:
        return fail(str(exc))
    if not isinstance(model, ImageClassifierModel):
        return fail(f"{args.model} holds a {type(model).__name__}, not an image classifier "
                    f"trained by `deepimage train` or the Trainer widget")
    path = export_classifier_onnx(model.net, args.onnx, image_size=model.image_size,
                                  classes=model.class_values, base_model=model.spec.name,
                                  tta=model.tta)
    print(f"Wrote {path}: input 'images' uint8 N x {model.image_size} x {model.image_size} x 3 "
          f"RGB; outputs 'embedding' (N x {model.spec.embedding_dim}) and 'probabilities' "
          f"(N x {len(model.class_values)}: {', '.join(model.class_values)}"
          f"{'; the mean of 5 views, as the model predicts' if model.tta > 1 else ''}).",
          file=sys.stderr)
    return 0
