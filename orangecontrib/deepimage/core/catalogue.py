"""The networks this computer can use, as rows for `deepimage models` and the docs:
the registered ones (core.models.MODELS) and, without building them, every torchvision
classification network with where its weights file is, or where to put it."""
from __future__ import annotations

__all__ = ["registered_rows", "torchvision_rows", "weights_place", "offered_specs", "find_spec"]


def weights_place(file_name: str) -> "tuple[bool, str]":
    """(True, path) when a torchvision weights file is on this computer, else (False, the
    path to put it at, in torch's hub cache). Never downloads."""
    from .weights import candidate_paths, hub_checkpoint_dir
    for path in candidate_paths(file_name):
        if path.is_file():
            return True, str(path)
    return False, str(hub_checkpoint_dir() / file_name)


def registered_rows() -> "tuple[list[tuple[str, ...]], list[str]]":
    """(rows of name, network, dim, input, parameters, weights; notes on missing weights)
    for the registered networks."""
    from .models import MODELS
    from .weights import weights_available
    rows, notes = [], []
    for spec in MODELS.values():
        ok, where = weights_available(spec)
        rows.append((spec.name, spec.display_name, str(spec.embedding_dim),
                     f"{spec.input_size}x{spec.input_size}", f"{spec.parameters / 1e6:.1f}M",
                     "available" if ok else "missing"))
        if not ok:
            notes.append(f"{spec.name}: {where}")
    return rows, notes


def torchvision_rows() -> "list[tuple[str, ...]]":
    """Rows of name, input, parameters, weights ("present: PATH" or "missing: put the
    file at PATH") for torchvision's classification networks, from their weights enums
    alone."""
    from torchvision.models import get_model_weights

    from .models import registered_name
    from .torchvision_models import torchvision_names
    rows = []
    for name in torchvision_names():
        if registered_name(name):  # inception_v3, vgg16: the add-on's own
            continue
        weights = get_model_weights(name).DEFAULT
        size = weights.transforms().crop_size[0]
        file_name = weights.url.rsplit("/", 1)[-1]
        present, path = weights_place(file_name)
        rows.append((name, f"{size}x{size}", f"{weights.meta['num_params'] / 1e6:.1f}M",
                     f"present: {path}" if present else f"missing: put the file at {path}"))
    return rows


def offered_specs() -> "list":
    """The networks a widget offers: the registered ones, then each torchvision network
    whose weights file is on this computer (torchvision is imported only when the hub
    cache or $DEEPIMAGE_WEIGHTS_DIR holds a .pth file that is not a registered one's)."""
    from .models import MODELS, get_spec, registered_name
    from .weights import candidate_paths
    specs = list(MODELS.values())
    known = {spec.weights_file for spec in specs}
    folders = {path.parent for path in candidate_paths("x")}
    files = {path.name for folder in folders if folder.is_dir()
             for path in folder.glob("*.pth")} - known
    if not files:
        return specs
    from .torchvision_models import torchvision_names
    from torchvision.models import get_model_weights
    for name in torchvision_names():
        if not registered_name(name) and \
                get_model_weights(name).DEFAULT.url.rsplit("/", 1)[-1] in files:
            specs.append(get_spec(name))
    return specs


def find_spec(name: str):
    """The spec of ``name`` (registered or torchvision), or None: for settings that may
    name a network this computer no longer has."""
    from .models import UnknownModel, get_spec
    try:
        return get_spec(name)
    except UnknownModel:
        return None
