"""Label as you go, the public Python API::

    from orangecontrib.deepimage.labelling import suggest_next, label_issues

`suggest_next(embeddings, labels, n)` says which unlabelled images to label next,
`label_issues(embeddings, labels)` which labels the data contradicts,
`fit_quick_model` / `estimate_accuracy` give the quick model and its expected accuracy
on the unlabelled images (calibrated on held-out labels). `labels` holds one label or
None per row of `embeddings`. See doc/labelling.md.
"""
from .core.labelling import (STRATEGIES, AccuracyEstimate, LabelIssue, LabellingError,
                             LabelSummary, QuickModel, describe_label_issues,
                             estimate_accuracy, fit_quick_model, is_unlabelled,
                             label_issue_scores, label_issues, suggest_next,
                             summarize_labels)

__all__ = ["STRATEGIES", "suggest_next", "label_issues", "label_issue_scores", "LabelIssue",
           "describe_label_issues", "QuickModel",
           "fit_quick_model", "AccuracyEstimate", "estimate_accuracy", "LabellingError",
           "LabelSummary", "summarize_labels", "is_unlabelled"]
