"""A few thumbnails as HTML for a widget's report (Orange's Report window)."""
from __future__ import annotations

import base64
import html
import io
from typing import Sequence

from PIL import Image

from orangecontrib.deepimage.core.images import ImageError
from orangecontrib.deepimage.widgets.utils.thumbnails import thumbnail_array

__all__ = ["thumbnails_html"]


def thumbnails_html(paths: Sequence[str], titles: Sequence[str], side: int = 96) -> str:
    """``paths`` as inline PNG thumbnails (side x side at most) with their titles; an
    image that cannot be read shows its reason instead."""
    cells = []
    for path, title in zip(paths, titles):
        try:
            buffer = io.BytesIO()
            Image.fromarray(thumbnail_array(path, side)).save(buffer, "PNG")
            encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
            picture = f'<img src="data:image/png;base64,{encoded}" alt="{html.escape(title)}">'
        except ImageError as exc:
            picture = f"<i>{html.escape(str(exc))}</i>"
        cells.append(f'<td style="text-align:center; padding:4px">{picture}'
                     f"<br><small>{html.escape(title)}</small></td>")
    return f"<table><tr>{''.join(cells)}</tr></table>"
