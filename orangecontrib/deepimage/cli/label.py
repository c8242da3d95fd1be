"""`deepimage label-next` and `deepimage label-issues`: the labelling loop from a
terminal, on the embeddings file `deepimage embed` writes (.csv, .tab or .npy).

Exit codes: 0 done, 2 wrong arguments or a file that cannot be used."""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from dataclasses import dataclass

from .common import fail, warn

#: core.labelling.STRATEGIES, spelled out so that the parser imports no scikit-learn
STRATEGIES = ("auto", "diverse", "uncertain", "random")

__all__ = ["register", "cmd_label_next", "cmd_label_issues", "EmbeddingsFile",
           "read_embeddings", "read_label_file"]


def register(commands) -> None:
    """Add label-next and label-issues to the `deepimage` subparsers."""
    nxt = commands.add_parser(
        "label-next", help="which images to label next",
        description="Print the N unlabelled images that would teach the quick model most "
                    "(diverse picks while labels are few, then the least certain ones). "
                    "EMBEDDINGS is a .csv, .tab or .npy file from `deepimage embed`.")
    nxt.add_argument("embeddings", metavar="EMBEDDINGS")
    nxt.add_argument("--labels", metavar="FILE|COLUMN",
                     help="the labels so far: a CSV file of image,label rows, or the name "
                          "of a column of EMBEDDINGS (empty cells are unlabelled)")
    nxt.add_argument("-n", type=int, default=10, metavar="N",
                     help="how many images to suggest (default 10)")
    nxt.add_argument("--strategy", default="auto", choices=STRATEGIES,
                     help="auto (default), diverse, uncertain or random")
    nxt.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    nxt.add_argument("--json", action="store_true",
                     help="print a JSON object instead of one image per line")
    nxt.set_defaults(run=cmd_label_next)

    issues = commands.add_parser(
        "label-issues", help="labels that the images contradict",
        description="Print the labelled images whose label the data contradicts, most "
                    "suspicious first, from out-of-fold predictions of the quick model.")
    issues.add_argument("embeddings", metavar="EMBEDDINGS")
    issues.add_argument("--labels", metavar="COLUMN|FILE", required=True,
                        help="the column of EMBEDDINGS that holds the labels (such as "
                             "category in a .tab), or a CSV file of image,label rows")
    issues.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    issues.add_argument("--json", action="store_true", help="print a JSON object")
    issues.set_defaults(run=cmd_label_issues)


@dataclass
class EmbeddingsFile:
    """What an embeddings file holds: image names, the vectors, other columns."""
    images: list
    X: object
    columns: dict


def read_embeddings(path: str) -> EmbeddingsFile:
    """Read a .csv (image, n0, n1, ...), .tab (Orange table) or .npy file. Raises
    ValueError with a reason a person can act on."""
    if not os.path.isfile(path):
        raise ValueError(f"no such file: {path}")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npy":
        import numpy as np
        X = np.load(path, allow_pickle=False)
        return EmbeddingsFile([str(i) for i in range(len(X))], X, {})
    if suffix == ".csv":
        return read_csv(path)
    if suffix == ".tab":
        return read_tab(path)
    raise ValueError(f"{path}: not an embeddings file (.csv, .tab or .npy, as "
                     "`deepimage embed -o` writes)")


def read_csv(path: str) -> EmbeddingsFile:
    """The CSV `deepimage embed` writes: the image, then n0..n(d-1); any other column
    (such as a label column added by hand) is kept as text."""
    import numpy as np
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path} is empty")
    header, body = rows[0], rows[1:]
    features = [i for i, name in enumerate(header) if name[:1] == "n" and name[1:].isdigit()]
    if not features:
        raise ValueError(f"{path} has no embedding columns (n0, n1, ...): is it the output "
                         "of `deepimage embed`?")
    first = next((i for i, name in enumerate(header) if i not in features), None)
    try:
        X = np.array([[float(row[i]) if row[i] != "" else np.nan for i in features]
                      for row in body], dtype=np.float64).reshape(len(body), len(features))
    except (ValueError, IndexError) as error:
        raise ValueError(f"{path}: a row is not numbers in n0..: {error}") from None
    columns = {header[i]: [row[i] if i < len(row) else "" for row in body]
               for i in range(len(header)) if i not in features}
    images = columns.get("image") or (columns[header[first]] if first is not None
                                      else [str(i) for i in range(len(body))])
    return EmbeddingsFile(list(images), X, columns)


def read_tab(path: str) -> EmbeddingsFile:
    """An Orange table from `deepimage embed -o x.tab` (or Image Embedder, saved)."""
    from Orange.data import Table

    from ..data import image_column, image_values
    try:
        table = Table.from_file(path)
    except Exception as error:  # Orange's readers raise many kinds
        raise ValueError(f"{path}: cannot read it as an Orange table: {error}") from None
    column = image_column(table)
    images = (image_values(table, column) if column is not None
              else [str(i) for i in range(len(table))])
    domain = table.domain
    columns = {var.name: image_values(table, var) for var in
               [*domain.class_vars, *domain.metas] if var.is_discrete or var.is_string}
    return EmbeddingsFile(images, table.X, columns)


def read_label_file(path: str) -> dict:
    """image -> label from a CSV file of image,label rows (a header row is allowed)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = [row for row in csv.reader(f) if row]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["image", "label"]:
        rows = rows[1:]
    bad = [row for row in rows if len(row) < 2]
    if bad:
        raise ValueError(f"{path}: every row must be image,label; this one is not: "
                         f"{','.join(bad[0])}")
    return {row[0]: row[1] for row in rows}


def match_labels(images: list, given: dict) -> tuple:
    """One label (or None) per image, matched by the name as written in the embeddings
    file, else by the file name when that is unique; and the names that matched no
    image (labels for images that are gone, reported, never dropped from the file)."""
    exact = {name: i for i, name in enumerate(images)}
    by_base = {}
    for i, name in enumerate(images):
        by_base.setdefault(os.path.basename(name), []).append(i)
    labels, unmatched = [None] * len(images), []
    for name, label in given.items():
        row = exact.get(name)
        if row is None and len(by_base.get(os.path.basename(name), [])) == 1:
            row = by_base[os.path.basename(name)][0]
        if row is None:
            unmatched.append(name)
        elif label.strip():
            labels[row] = label.strip()
    return labels, unmatched


def labels_for(args: argparse.Namespace, data: EmbeddingsFile) -> list:
    """The labels the --labels option names: a column of the file, or a label file."""
    if args.labels is None:
        return [None] * len(data.images)
    if args.labels in data.columns:
        return [value.strip() or None for value in data.columns[args.labels]]
    if not os.path.isfile(args.labels):
        names = ", ".join(data.columns) or "none"
        raise ValueError(f"--labels {args.labels}: neither a column of {args.embeddings} "
                         f"(its columns: {names}) nor a file")
    labels, unmatched = match_labels(data.images, read_label_file(args.labels))
    if unmatched:
        shown = ", ".join(unmatched[:5]) + (", ..." if len(unmatched) > 5 else "")
        warn(f"{len(unmatched)} labelled image{'s' * (len(unmatched) != 1)} of "
             f"{args.labels} not in {args.embeddings}, left out: {shown}")
    return labels


def load(args: argparse.Namespace) -> tuple:
    """The embeddings file, its labels and a summary; notes go to stderr."""
    from ..core.labelling import summarize_labels
    data = read_embeddings(args.embeddings)
    labels = labels_for(args, data)
    summary = summarize_labels(data.X, labels)
    for note in summary.notes:
        warn(note)
    return data, labels, summary


def cmd_label_next(args: argparse.Namespace) -> int:
    from ..core.labelling import LabellingError, suggest_next
    if args.n < 0:
        return fail("-n must be 0 or more")
    try:
        data, labels, summary = load(args)
        picks = suggest_next(data.X, labels, args.n, args.strategy, args.seed)
    except (ValueError, LabellingError) as error:
        return fail(str(error))
    if args.json:
        print(json.dumps({"labelled": summary.n_labelled, "classes": summary.n_classes,
                          "strategy": args.strategy, "notes": list(summary.notes),
                          "next": [{"row": i, "image": data.images[i]} for i in picks]}))
    else:
        print(f"{summary.n_labelled} labelled in {summary.n_classes} "
              f"class{'es' * (summary.n_classes != 1)}; label next:", file=sys.stderr)
        for i in picks:
            print(data.images[i])
    return 0


def cmd_label_issues(args: argparse.Namespace) -> int:
    from ..core.labelling import LabellingError, describe_label_issues, estimate_accuracy
    try:
        data, labels, summary = load(args)
        issues = describe_label_issues(data.X, labels, args.seed)
        estimate = estimate_accuracy(data.X, labels, args.seed)
    except (ValueError, LabellingError) as error:
        return fail(str(error))
    if args.json:
        print(json.dumps({"labelled": summary.n_labelled, "classes": summary.n_classes,
                          "accuracy": rounded(estimate.mean),
                          "accuracy_std": rounded(estimate.std),
                          "accuracy_low": rounded(estimate.low),
                          "accuracy_high": rounded(estimate.high),
                          "notes": list(summary.notes), "issues": [
                              {"row": i.row, "image": data.images[i.row],
                               "label": str(i.label), "likely": str(i.likely),
                               "label_probability": round(i.label_probability, 4),
                               "likely_probability": round(i.likely_probability, 4)}
                              for i in issues]}))
        return 0
    print(f"{summary.n_labelled} labelled in {summary.n_classes} classes; {estimate}; "
          f"{len(issues)} suspicious label{'s' * (len(issues) != 1)}", file=sys.stderr)
    writer = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
    if issues:
        writer.writerow(["image", "label", "likely", "p(label)", "p(likely)"])
    for i in issues:
        writer.writerow([data.images[i.row], i.label, i.likely,
                         f"{i.label_probability:.3f}", f"{i.likely_probability:.3f}"])
    return 0


def rounded(value: "float | None", digits: int = 4) -> "float | None":
    """A number for JSON, rounded; None stays None."""
    return None if value is None else round(value, digits)
