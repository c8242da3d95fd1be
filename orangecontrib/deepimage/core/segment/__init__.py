"""Objects in images: segment, count and measure (no Qt, no Orange).

- threshold.py: the threshold method (Otsu, Li, local; background correction;
  watershed split of touching objects), ThresholdParams, segment_threshold;
- features.py, classifier.py: the pixel classifier (filter and/or SqueezeNet
  features, a random forest), saved as one skops file (classifier_file.py);
- shapes.py: masks and class maps -> labelled objects (fill, size filter, split);
- objects.py: measurements per object in the image's original units, summaries;
- masks.py: label images as uint16 PNG / TIFF, crops of objects;
- reading.py, run.py: image files in original units -> ImageResults;
- preview.py: the label editor's live preview (features kept, the view first);
- synthetic.py, metrics.py: generated images with known masks and the scores.
"""
from .classifier import LabelError, PixelClassifier, SegmenterFileError
from .features import FEATURE_SETS, pixel_features
from .masks import MaskError, crop_object, read_label_image, write_label_image
from .metrics import match_objects, object_f1, pixel_accuracy
from .objects import ImageSummary, measure_objects, summarise
from .reading import read_original
from .run import ImageResult, Segmenter, segment_image, segment_paths
from .shapes import objects_from_class_map, objects_from_mask
from .threshold import METHODS, ThresholdParams, segment_threshold

__all__ = [
    "ThresholdParams", "METHODS", "segment_threshold", "FEATURE_SETS", "pixel_features",
    "PixelClassifier", "SegmenterFileError", "LabelError", "measure_objects", "summarise",
    "ImageSummary", "read_label_image", "write_label_image", "crop_object", "MaskError",
    "read_original", "segment_paths", "segment_image", "ImageResult", "Segmenter",
    "objects_from_mask", "objects_from_class_map", "match_objects", "object_f1",
    "pixel_accuracy",
]
