"""`deepimage evaluate`: k-fold cross-validation of the image classifier (a headless
Test & Score), optionally beside logistic regression on the network's embeddings.
Exit codes: 0 done, 1 every method failed, 2 wrong arguments, 130 interrupted."""
from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from .common import fail
from .progress import TrainingProgress
from .train import prepare, training_arguments

__all__ = ["register", "cmd_evaluate"]

SCORES = ("CA", "F1", "AUC")


def register(commands) -> None:
    """Add the evaluate sub-command to the `deepimage` subparsers."""
    evaluate = commands.add_parser(
        "evaluate", help="cross-validate the classifier (a headless Test & Score)",
        description="K-fold cross-validation of the image classifier on DIR's class "
                    "folders with Orange's CrossValidation; prints CA, F1 and AUC per "
                    "method and the confusion matrix.")
    training_arguments(evaluate)
    evaluate.add_argument("--folds", type=int, default=5, metavar="K")
    evaluate.add_argument("--compare-logreg", action="store_true",
                          help="also logistic regression on the network's embeddings "
                               "(as Image Embedder makes them), on the same folds")
    evaluate.add_argument("--json", action="store_true",
                          help='print one JSON object {method: {"CA", "F1", "AUC"}} on '
                               'stdout (everything else goes to stderr)')
    evaluate.set_defaults(run=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..core.weights import WeightsUnavailable
    if args.folds < 2:
        return fail("--folds must be at least 2")
    # on a terminal a bar and a line per fold; elsewhere also a line per epoch
    progress = TrainingProgress(sys.stderr, quiet=args.quiet, folds=args.folds,
                                epoch_lines=False)
    try:
        learner, table = prepare(args)
        learners, table = _with_logreg(args, learner, table)
        results = _cross_validate(args, table, learners, progress)
    except (ValueError, WeightsUnavailable) as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print("deepimage: interrupted.", file=sys.stderr)
        return 130
    report = {}
    for i, method in enumerate(learners):
        if results.failed[i]:
            print(f"{method.name} failed: {results.failed[i]}", file=sys.stderr)
        else:
            report[method.name] = _scores(results, i)
    text = sys.stderr if args.json else sys.stdout
    _print_scores(report, text)
    for i, method in enumerate(learners):
        if not results.failed[i]:
            _print_confusion(results, i, method.name, list(table.domain.class_var.values), text)
    if args.json:
        print(json.dumps(report))
    return 1 if not report else 0


def _with_logreg(args: argparse.Namespace, learner, table):
    """The learners to compare and the table they learn from: with --compare-logreg,
    logistic regression too, on the network's embeddings (added to the table)."""
    if not args.compare_logreg:
        return [learner], table
    from Orange.classification import LogisticRegressionLearner

    from ..core.local_embedder import Embedder
    from ..data import embeddings_table, image_paths
    if not args.quiet:
        print(f"Embedding {len(table)} images with {learner.config().model} ...",
              file=sys.stderr)
    embedder = Embedder(args.model, device=args.device, random_weights=args.random_weights)
    table, _ = embeddings_table(table, embedder.embed(image_paths(table)))
    return [learner, LogisticRegressionLearner()], table


def _cross_validate(args: argparse.Namespace, table, learners, progress: TrainingProgress):
    """Orange's stratified CrossValidation of ``learners``, with the first one's progress
    on ``progress`` (a bar and a line per fold)."""
    import warnings

    from Orange.evaluation import CrossValidation
    if not args.quiet:
        print(f"{args.folds}-fold cross-validation of "
              f"{', '.join(l.name for l in learners)} on {len(table)} images ...",
              file=sys.stderr)
    learners[0].progress_callback = progress.progress
    learners[0].epoch_callback = progress.epoch
    calls = [0]

    def learner_finished(_share: float) -> None:
        # CrossValidation calls this after each learner of each fold, fold by fold (and
        # once more at the end)
        calls[0] += 1
        last = args.folds * len(learners)
        if calls[0] % len(learners) == 0 and calls[0] <= last:
            progress.end_fold()
            if calls[0] < last:
                progress.start_fold(calls[0] // len(learners) + 1)

    progress.start_fold(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs convergence notes and the like
        try:
            return CrossValidation(k=args.folds, stratified=True, random_state=args.seed)(
                table, learners, callback=learner_finished)
        finally:
            progress.close()


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


def _print_scores(report: dict, text: TextIO) -> None:
    width = max(len(name) for name in report) if report else 10
    print(f"{'method'.ljust(width)}  CA     F1     AUC", file=text)
    for name, scores in report.items():
        cells = [f"{scores[k]:.3f}" if scores[k] is not None else "  -  " for k in SCORES]
        print(f"{name.ljust(width)}  {'  '.join(cells)}", file=text)


def _print_confusion(results, index: int, name: str, values: list, text: TextIO) -> None:
    import numpy as np
    matrix = np.zeros((len(values), len(values)), int)
    np.add.at(matrix, (results.actual.astype(int), results.predicted[index].astype(int)), 1)
    print(f"\nConfusion matrix, {name} (rows: actual, columns: predicted)", file=text)
    cell = max(max(len(v) for v in values), len(str(matrix.max()))) + 1
    print(" " * cell + "".join(v.rjust(cell) for v in values), file=text)
    for value, row in zip(values, matrix):
        print(value.rjust(cell) + "".join(str(n).rjust(cell) for n in row), file=text)
