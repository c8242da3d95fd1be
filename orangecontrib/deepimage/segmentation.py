"""Segment Images' work, without Qt: find the objects in a table's images, as tables.

``run_segmentation`` segments every image of an Import Images table (core.segment)
in the widget's worker thread and builds three tables:

- **Objects**: one row per object, its measurements (ContinuousVariables), its class
  when there are several kinds, the name of the image it is in, and an ``image``
  column (type=image) pointing at a crop of the object, so Image Embedder ->
  Distances -> Hierarchical Clustering works on cells as it works on photos;
- **Images**: the input rows with the object count, mean area and covered fraction,
  and a ``mask`` column (type=mask) naming the label image, from which Image
  Viewer draws the outlines;
- **Skipped Images**: rows that could not be segmented, with the reason.

The label editor's live preview of a threshold uses ``preview_threshold``; that of a
classifier is in seglive (a quick forest on the labels so far, PreviewModels).
"""
from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Protocol, Sequence

import numpy as np
from Orange.data import ContinuousVariable, DiscreteVariable, Domain, StringVariable, Table

from .core.cancel import Cancelled
from .data import image_column, image_paths, with_reasons

__all__ = ["SegmentationResult", "run_segmentation", "objects_table", "images_table",
           "train_classifier", "labelled_images", "painted_class_names",
           "train_and_segment", "preview_classifier", "preview_threshold", "summary",
           "PixelCache",
           "TrainedClassifiers",
           "read_pixels", "display_pixels", "MASK_TYPE", "OBJECTS_NAME", "IMAGES_NAME",
           "SKIPPED_NAME"]

MASK_TYPE = "mask"  # the attribute ``type`` of the Images table's mask column
OBJECTS_NAME, IMAGES_NAME, SKIPPED_NAME = "Objects", "Segmented images", "Skipped images"
#: measurements that are not numbers of the object (they go elsewhere, or nowhere)
_NOT_MEASURES = {"class", "image", "path"}


class State(Protocol):
    """What run_segmentation needs of Orange's TaskState."""

    def set_status(self, text: str) -> None: ...
    def set_progress_value(self, value: float) -> None: ...
    def is_interruption_requested(self) -> bool: ...


@dataclass(frozen=True)
class SegmentationResult:
    """The three output tables (None when empty) and counts for the widget's summary."""

    objects: Optional[Table]
    images: Optional[Table]
    skipped: Optional[Table]
    n_images: int
    n_objects: int
    n_skipped: int
    segmenter: Any = None  # the PixelClassifier used (trained in this run, or given)


def read_pixels(path: str) -> np.ndarray:
    """An image's pixels in its own units (a 16-bit TIFF's counts), as the segmenters
    read it."""
    from .core.segment.reading import read_original
    return read_original(path)


def display_pixels(pixels: np.ndarray) -> np.ndarray:
    """8-bit pixels to show an image as it is segmented (the same size and orientation):
    8-bit images as they are, others (16-bit counts, floats) stretched per channel."""
    if pixels.dtype == np.uint8:
        return pixels
    from .core.labimages import stretch_to_uint8
    planes = pixels[:, :, None] if pixels.ndim == 2 else pixels
    shown = stretch_to_uint8(planes)
    return shown[:, :, 0] if pixels.ndim == 2 else shown


def _name(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _relative(path: str, root: str) -> str:
    return os.path.relpath(path, root).replace(os.sep, "/")


def objects_table(results: Sequence, crops_dir: Optional[str],
                  class_names: Optional[Sequence[str]] = None) -> Optional[Table]:
    """One row per object of the segmented images (core ImageResults); None if none.
    With ``crops_dir`` None (no crops written) there is no ``image`` column."""
    rows = [r for r in results if r.skipped_reason is None and r.objects
            and len(next(iter(r.objects.values()), ()))]
    if not rows:
        return None
    columns = [name for name in rows[0].objects if name not in _NOT_MEASURES]
    classes = [str(c) for r in rows for c in r.objects.get("class", ())]
    # the classifier's kinds of object (all of them, found or not), else those found
    kinds = list(class_names[1:]) if class_names and len(class_names) > 2 else []
    kinds += sorted(set(classes) - set(kinds))
    class_var = DiscreteVariable("class", values=kinds) if len(kinds) > 1 and classes \
        else None
    attributes = [ContinuousVariable(name) for name in columns]
    metas = [StringVariable("image name"), StringVariable("source image")]
    if crops_dir is not None:
        image_var = StringVariable("image")
        image_var.attributes.update(type="image", origin=os.path.abspath(crops_dir))
        metas.append(image_var)
    x = np.vstack([np.column_stack([np.asarray(r.objects[c], dtype=float) for c in columns])
                   for r in rows])
    meta_values = []
    for r in rows:
        name, crops = _name(r.path), list(r.crop_paths or ())
        ids = r.objects.get("id", range(1, len(r.objects[columns[0]]) + 1))
        for i, object_id in enumerate(ids):
            row = [f"{name} #{int(object_id)}", name]
            if crops_dir is not None:
                row.append(_relative(crops[i], crops_dir) if i < len(crops) else "")
            meta_values.append(row)
    y = None
    if class_var is not None:
        y = np.array([class_var.values.index(c) for c in classes], dtype=float)
    table = Table.from_numpy(Domain(attributes, class_var, metas), x, y,
                             metas=np.array(meta_values, dtype=object).reshape(len(x),
                                                                               len(metas)))
    table.name = OBJECTS_NAME
    return table


_PER_IMAGE = (("objects", "count", 0), ("mean area", "mean_area", 2),
              ("covered fraction", "covered_fraction", 4))


def images_table(data: Table, rows: Sequence[int], results: Sequence,
                 masks_dir: str) -> Optional[Table]:
    """The input ``rows`` with per-image counts (in X) and a ``mask`` column."""
    if not rows:
        return None
    taken = {v.name for v in data.domain.variables + data.domain.metas}
    counts = [ContinuousVariable(name if name not in taken else f"{name} (segmented)",
                                 number_of_decimals=decimals)
              for name, _, decimals in _PER_IMAGE]
    mask_var = StringVariable("mask" if "mask" not in taken else "mask (segmented)")
    mask_var.attributes.update(type=MASK_TYPE, origin=os.path.abspath(masks_dir))
    column = image_column(data)
    if column is not None:
        mask_var.attributes["image"] = column.name  # which images the masks belong to
    domain = Domain(data.domain.attributes + tuple(counts), data.domain.class_vars,
                    data.domain.metas + (mask_var,))
    table = data[list(rows)].transform(domain)
    n_old = len(data.domain.attributes)
    with table.unlocked(table.X, table.metas):
        for i, result in enumerate(results):
            summary_ = result.summary
            table.X[i, n_old:] = [getattr(summary_, field) for _, field, _ in _PER_IMAGE]
            table.metas[i, -1] = (_relative(result.mask_path, masks_dir)
                                  if result.mask_path else "")
    table.name = IMAGES_NAME
    return table


def _segment_all(paths: Sequence[str], segmenter, crops_dir: str, state: State,
                 crops: bool = True, **shape) -> list:
    from .core.segment.run import segment_paths
    masks_dir = os.path.join(crops_dir, "masks")
    crops = os.path.join(crops_dir, "crops") if crops else None
    results = []

    def progress(fraction: float) -> None:
        state.set_progress_value(100 * fraction)

    for result in segment_paths(paths, segmenter, masks_out=masks_dir, crops_out=crops,
                                progress=progress,
                                is_cancelled=state.is_interruption_requested, **shape):
        results.append(result)
    return results


def run_segmentation(data: Table, segmenter, crops_dir: str, state: State,
                     crops: bool = True, split_touching: bool = True,
                     diameter: Optional[tuple] = None) -> SegmentationResult:
    """Segment the images of ``data`` (an image table) with ``segmenter`` (the core's
    ThresholdParams or a PixelClassifier), writing masks to ``crops_dir``/masks and,
    if ``crops``, a crop per object to ``crops_dir``/crops (many small files: for
    100,000 objects leave them out). ``split_touching`` and ``diameter`` make objects
    of a classifier's pixels (ThresholdParams carry their own). Raises Cancelled when
    asked to stop."""
    paths = image_paths(data)
    state.set_status(f"Segmenting {len(paths):,} images...")
    results = _segment_all(paths, segmenter, crops_dir, state, crops,
                           split_touching=split_touching, diameter=diameter)
    done = [i for i, r in enumerate(results) if r.skipped_reason is None]
    skipped = [i for i, r in enumerate(results) if r.skipped_reason is not None]
    class_names = getattr(segmenter, "class_names", None)
    objects = objects_table([results[i] for i in done],
                            os.path.join(crops_dir, "crops") if crops else None, class_names)
    images = images_table(data, done, [results[i] for i in done],
                          os.path.join(crops_dir, "masks"))
    skipped_table = None
    if skipped:
        skipped_table = with_reasons(data[skipped], [results[i].skipped_reason
                                                     for i in skipped])
        skipped_table.name = SKIPPED_NAME
    return SegmentationResult(objects, images, skipped_table, len(done),
                              0 if objects is None else len(objects), len(skipped),
                              segmenter if hasattr(segmenter, "predict") else None)


class PixelCache:
    """Images read for training and preview, by path (the few labelled ones and the
    one on screen); shared by the GUI and worker threads."""

    def __init__(self, max_images: int = 16):
        self.max_images = max_images
        self._lock = threading.Lock()
        self._pixels: "dict[str, np.ndarray]" = {}

    def get(self, path: str) -> np.ndarray:
        with self._lock:
            pixels = self._pixels.get(path)
        if pixels is None:
            pixels = read_pixels(path)
            with self._lock:
                self._pixels[path] = pixels
                while len(self._pixels) > self.max_images:
                    self._pixels.pop(next(iter(self._pixels)))
        return pixels


def labelled_images(pixels: PixelCache, labels: Mapping[str, np.ndarray]
                    ) -> "dict[str, np.ndarray]":
    """The images with painted labels (``labels``: path -> labels), path -> pixels;
    ValueError when nothing is painted or labels differ in size from their image."""
    painted = [path for path, values in labels.items() if values.any()]
    if not painted:
        raise ValueError("Paint some labels first: background and at least one kind of "
                         "object, on one or more images.")
    images = {}
    for path in painted:
        image, values = pixels.get(path), labels[path]
        if image.shape[:2] != values.shape:
            raise ValueError(f"The labels of {os.path.basename(path)} are "
                             f"{values.shape[1]}x{values.shape[0]} pixels, but "
                             f"the image is {image.shape[1]}x{image.shape[0]}.")
        images[path] = image
    return images


def painted_class_names(labels: Mapping[str, np.ndarray],
                        class_names: Optional[Sequence[str]]) -> Optional[list]:
    """The names of the classes painted in ``labels`` (label v is ``class_names[v - 1]``),
    or None when there are no names for them all."""
    present = sorted({int(v) for values in labels.values() for v in np.unique(values) if v})
    if class_names and present and max(present) <= len(class_names):
        return [class_names[v - 1] for v in present]
    return None


def train_classifier(pixels: PixelCache, labels: Mapping[str, np.ndarray],
                     features: str = "filters", class_names: Optional[Sequence[str]] = None):
    """A PixelClassifier trained on the labelled images (``labels``: path -> labels)."""
    from .core.segment.classifier import PixelClassifier
    images = labelled_images(pixels, labels)
    return PixelClassifier().fit(list(images.values()), [labels[p] for p in images],
                                 features=features,
                                 class_names=painted_class_names(labels, class_names),
                                 names=[os.path.basename(p) for p in images])


def labels_key(labels: Mapping[str, np.ndarray], features: str,
               class_names: Optional[Sequence[str]]) -> bytes:
    """A digest of painted labels and the classifier's settings: the same key, the same
    classifier (Segment Images' run and its live preview keep one per key)."""
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(labels):
        values = np.ascontiguousarray(labels[path])
        digest.update(f"{path}\0{values.shape}\0".encode())
        digest.update(values.tobytes())
    digest.update(f"{features}\0{list(class_names or ())}".encode())
    return digest.digest()


class TrainedClassifiers:
    """The classifier last trained for a run, kept while the labels, features and names
    stay the same: running again with other object options (crops, diameter, splitting)
    does not train again. Segment Images keeps one for its runs; the live preview
    trains its own quick forest (seglive.PreviewModels). Thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._key: Optional[bytes] = None
        self._classifier = None
        self.trainings = 0  # how many times a classifier was trained; tests read it

    def get(self, pixels: PixelCache, labels: Mapping[str, np.ndarray], features: str,
            class_names: Optional[Sequence[str]] = None):
        """A classifier trained on ``labels`` (path -> labels), trained now if needed."""
        key = labels_key(labels, features, class_names)
        with self._lock:
            if key != self._key or self._classifier is None:
                self._classifier = train_classifier(pixels, labels, features, class_names)
                self._key = key
                self.trainings += 1
            return self._classifier


def train_and_segment(data: Table, pixels: PixelCache, labels: Mapping[str, np.ndarray],
                      features: str, class_names: Optional[Sequence[str]], crops_dir: str,
                      state: State, trained: Optional[TrainedClassifiers] = None,
                      **options) -> SegmentationResult:
    """Train a classifier on ``labels`` (path -> labels), then segment ``data`` with it;
    ``trained`` keeps the classifier trained for an earlier run (the widget's);
    ``options`` are run_segmentation's."""
    state.set_status("Training on the labels...")
    classifier = (trained or TrainedClassifiers()).get(pixels, labels, features, class_names)
    if state.is_interruption_requested():
        raise Cancelled()
    return run_segmentation(data, classifier, crops_dir, state, **options)


def preview_classifier(pixels: PixelCache, labels: Mapping[str, np.ndarray], features: str,
                       path: str, class_names: Optional[Sequence[str]], state: State,
                       trained: Optional[TrainedClassifiers] = None):
    """(classifier, class map of the image ``path``): the full classifier trained and
    the whole image predicted. The editor's live update before seglive; the widget no
    longer calls it: kept for tests/test_segmentation.py and the "before" column of
    benchmarks/segment_preview.py."""
    classifier = (trained or TrainedClassifiers()).get(pixels, labels, features, class_names)
    if state.is_interruption_requested():
        raise Cancelled()
    return classifier, np.asarray(classifier.predict(pixels.get(path)))


def preview_threshold(params, pixels: PixelCache, path: str, state: State):
    """(None, class map of ``path``): 1 background, 2 objects, from the thresholds; each
    object's border pixels are background, so touching objects show apart."""
    from skimage.segmentation import find_boundaries

    from .core.segment.threshold import segment_threshold
    labels = segment_threshold(pixels.get(path), params)
    inside = (labels > 0) & ~find_boundaries(labels, mode="inner")
    return None, np.where(inside, 2, 1).astype(np.uint8)


def summary(result: SegmentationResult) -> str:
    """'12 images, 340 objects (28.3 per image), 1 skipped'."""
    text = f"{result.n_images:,} image{'s' if result.n_images != 1 else ''}, " \
           f"{result.n_objects:,} object{'s' if result.n_objects != 1 else ''}"
    if result.n_images:
        text += f" ({result.n_objects / result.n_images:.1f} per image)"
    if result.n_skipped:
        text += f", {result.n_skipped:,} skipped"
    return text
