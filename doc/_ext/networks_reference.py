"""The networks page, rendered from the model registry (core.models) and torchvision's
weights enums: a network added to the registry appears without editing a page.
Nothing here builds a network or reads a weights file."""
from __future__ import annotations


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def render_registered() -> str:
    """A table of the registered networks, from their ModelSpecs."""
    from orangecontrib.deepimage.core.models import MODELS
    lines = ["| name | network | input | colours | embedding | dim | Grad-CAM layer | "
             "weights |", "|---|---|---|---|---|---|---|---|"]
    for spec in MODELS.values():
        lines.append("| " + " | ".join(_cell(c) for c in (
            f"`{spec.name}`", spec.display_name, f"{spec.input_size} px "
            f"(at least {spec.min_input_size})", spec.colour_order, spec.embedding_layer,
            spec.embedding_dim, f"`{spec.gradcam_layer}`" if spec.gradcam_layer else "none",
            spec.weights_source)) + " |")
    return "\n".join(lines) + "\n"


def render_torchvision() -> str:
    """A table of torchvision's classification networks, from their weights enums."""
    from torchvision.models import get_model_weights

    from orangecontrib.deepimage.core.models import registered_name
    from orangecontrib.deepimage.core.torchvision_models import torchvision_names
    lines = ["| name | weights | input | parameters | ImageNet top-1 | weights file |",
             "|---|---|---|---|---|---|"]
    for name in torchvision_names():
        if registered_name(name):  # inception_v3, vgg16: the add-on's own
            continue
        weights = get_model_weights(name).DEFAULT
        top1 = weights.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
        lines.append("| " + " | ".join(_cell(c) for c in (
            f"`{name}`", f"{type(weights).__name__}.{weights.name}",
            f"{weights.transforms().crop_size[0]} px",
            f"{weights.meta['num_params'] / 1e6:.1f} M",
            f"{top1:.1f} %" if top1 is not None else "",
            f"`{weights.url.rsplit('/', 1)[-1]}`")) + " |")
    return "\n".join(lines) + "\n"


def render_networks_reference() -> str:
    """Both tables, as Markdown sections."""
    return ("## The add-on's networks\n\n" + render_registered() +
            "\n## torchvision's networks\n\n" + render_torchvision())
