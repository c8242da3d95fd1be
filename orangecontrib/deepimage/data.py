"""Orange tables <-> core: image tables like Import Images makes, embeddings added.

The layout interoperates with orange3-imageanalytics both ways (as its
ImportImages widget writes and its embedder reads them): metas ``image name``, ``image`` (type=image, origin=root,
relative "/" paths), ``size``, ``width``, ``height``; class ``category`` from
subfolders when there is more than one; embeddings as ``n0..`` in X.
No Qt here.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from Orange.data import ContinuousVariable, DiscreteVariable, Domain, StringVariable, Table

from .core.pipeline import EmbeddingResult
from .core.images import describe, is_url
from .core.urls import resolve

__all__ = ["image_table", "embeddings_table", "with_reasons", "image_column", "image_paths",
           "image_values", "common_root", "relative_value"]


#: the output tables' names, as orange3-imageanalytics names them (Data Table shows them)
EMBEDDED_NAME = "Embedded images"
SKIPPED_NAME = "Skipped images"


def common_root(paths: Sequence[str]) -> "str | None":
    """The deepest folder that holds every (local) path; None when there is none, as
    for C:\\a and D:\\b on Windows (different drives have no common folder)."""
    folders = [os.path.dirname(os.path.abspath(p)) for p in paths if not is_url(p)]
    try:
        return os.path.commonpath(folders) if folders else os.getcwd()
    except ValueError:  # paths on different drives
        return None


def relative_value(path: str, root: "str | None") -> str:
    """An image column's value for ``path``: relative to ``root`` with "/", or, when it
    has none (no root, or another drive than the root's), the absolute path with "/"."""
    path = os.path.abspath(path)
    try:
        value = os.path.relpath(path, root) if root else path
    except ValueError:  # another drive than root's
        value = path
    return value.replace(os.sep, "/")


def image_table(paths: Sequence[str], root: "str | None" = None,
                info: "Sequence[dict] | None" = None) -> Table:
    """A table of images in Import Images' layout (no features; class from subfolders).

    ``info`` (size, width, height per path, as ``describe`` gives) saves opening
    every file again when the caller has already read the headers. Paths with no
    common folder (on different drives) keep absolute values and an empty origin.
    """
    paths = list(paths)
    if info is not None and len(info) != len(paths):
        raise ValueError("image_table: one info dict per path is needed")
    root = os.path.abspath(root) if root else common_root(paths)
    relative, categories, names = [], [], []
    for path in paths:
        if is_url(path):
            relative.append(path)
            categories.append("")
        else:
            rel = relative_value(path, root)
            relative.append(rel)
            categories.append(rel.rsplit("/", 1)[0] if "/" in rel else ".")  # as the anchor
        names.append(os.path.splitext(os.path.basename(path))[0])
    if info is None:
        info = [describe(path) if not is_url(path) else {"size": None, "width": None,
                                                         "height": None} for path in paths]
    image_var = StringVariable("image")
    image_var.attributes["type"] = "image"
    image_var.attributes["origin"] = root or ""
    numbers = [ContinuousVariable(name, number_of_decimals=0)
               for name in ("size", "width", "height")]
    metas = [StringVariable("image name"), image_var, *numbers]
    values = sorted(set(categories))
    class_var = DiscreteVariable("category", values=values) if len(values) > 1 else None
    domain = Domain([], class_var, metas)
    meta_values = np.array(
        [[name, rel] + [np.nan if d[k] is None else d[k] for k in ("size", "width", "height")]
         for name, rel, d in zip(names, relative, info)], dtype=object).reshape(len(paths), 5)
    value_index = {value: i for i, value in enumerate(values)}
    y = (np.array([value_index[c] for c in categories], dtype=float)
         if class_var is not None else None)
    return Table.from_numpy(domain, np.empty((len(paths), 0)), y, metas=meta_values)


def _feature_names(dim: int, taken: set) -> list[str]:
    names = [f"n{i}" for i in range(dim)]
    if taken.intersection(names):  # embedding an embedded table: keep both sets
        suffix = 1
        while taken.intersection(f"{n} ({suffix})" for n in names):
            suffix += 1
        names = [f"{n} ({suffix})" for n in names]
    return names


def embeddings_table(table: Table, result: EmbeddingResult) -> tuple[Table, "Table | None"]:
    """(embedded rows with n0.. added to X, skipped rows with a ``reason`` meta or None).

    ``result.sources`` must correspond to the rows of ``table``; row ids are kept.
    """
    if len(result.sources) != len(table):
        raise ValueError("the embedding result does not match the table's rows")
    taken = {v.name for v in table.domain.variables + table.domain.metas}
    features = [ContinuousVariable(name) for name in _feature_names(result.dim, taken)]
    for var in features:
        var.attributes["hidden"] = True
    domain = Domain(table.domain.attributes + tuple(features), table.domain.class_vars,
                    table.domain.metas)
    rows = result.indices
    embedded = table[rows].transform(domain)
    with embedded.unlocked(embedded.X):
        embedded.X[:, len(table.domain.attributes):] = result.embeddings
    embedded.name = EMBEDDED_NAME
    skipped = None
    if result.skipped:
        skipped = with_reasons(table[[s.index for s in result.skipped]],
                               [s.reason for s in result.skipped])
        skipped.name = SKIPPED_NAME
    return embedded, skipped


def with_reasons(table: Table, reasons: Sequence[str], keep_class: bool = True) -> Table:
    """``table`` with a ``reason`` meta, one line per row: the layout of the Skipped outputs."""
    domain = Domain(table.domain.attributes, table.domain.class_vars if keep_class else None,
                    table.domain.metas + (StringVariable("reason"),))
    out = table.transform(domain)
    with out.unlocked(out.metas):
        out.metas[:, -1] = list(reasons)
    return out


def image_column(data: "Table | Domain", preferred: "str | None" = None
                 ) -> "StringVariable | DiscreteVariable | None":
    """The image path column: the text or categorical meta marked type=image (the one
    named ``preferred`` when there are several); None when there is none.

    Categorical image columns are accepted as orange3-imageanalytics accepts them
    (e.g. a path column that File read as categorical)."""
    domain = data if isinstance(data, Domain) else data.domain
    images = [v for v in domain.metas
              if isinstance(v, (StringVariable, DiscreteVariable))
              and v.attributes.get("type") == "image"]
    for var in images:
        if var.name == preferred:
            return var
    return images[0] if images else None


def image_values(table: Table, column: "StringVariable | DiscreteVariable") -> list[str]:
    """The column's values as text ("" where missing), for a text or categorical column."""
    values = table.get_column(column)
    if column.is_discrete:
        return ["" if np.isnan(v) else column.values[int(v)] for v in values.astype(float)]
    return ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
            for v in values]


def image_paths(table: Table, column: "StringVariable | DiscreteVariable | None" = None
                ) -> list[str]:
    """Absolute paths (or URLs) of a table's images, resolved against the column's
    origin: URLs are kept, relative values joined to a URL origin with urljoin and to
    a folder with os.path.join (core.urls.resolve)."""
    column = column or image_column(table)
    if column is None:
        raise ValueError("The data has no image column (a text column with type=image).")
    origin = column.attributes.get("origin", "")
    return [resolve(origin, value) for value in image_values(table, column)]
