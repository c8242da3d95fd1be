"""Label as you go: which images to label next, which labels look wrong, and a quick
model with an honest estimate of its accuracy. numpy and scikit-learn only (no Qt, no
Orange, no torch); the public names are re-exported by `orangecontrib.deepimage.labelling`.
"""
from .inputs import LabellingError, LabelSummary, is_unlabelled, summarize_labels
from .quickmodel import AccuracyEstimate, QuickModel, estimate_accuracy, fit_quick_model
from .suggest import STRATEGIES, suggest_next
from .issues import LabelIssue, describe_label_issues, label_issue_scores, label_issues

__all__ = ["STRATEGIES", "suggest_next", "label_issues", "label_issue_scores", "LabelIssue",
           "describe_label_issues", "QuickModel",
           "fit_quick_model", "AccuracyEstimate", "estimate_accuracy", "LabellingError",
           "LabelSummary", "summarize_labels", "is_unlabelled"]
