"""Names and text files across Windows, macOS and Linux (issue 21, item 4): file names
made from data are ones Windows accepts, and token files from PowerShell (UTF-16) or
Notepad (UTF-8 with a byte order mark) are read by the client and by the server."""
import codecs
import os

import numpy as np
import pytest
from PIL import Image

from orangecontrib.deepimage.client import read_token
from orangecontrib.deepimage.core.portable import printable_path, read_text, safe_file_name
from orangecontrib.deepimage.core.save import (SaveItem, SaveOptions, file_stem, safe_subfolder,
                                               save_images)

TOKEN = "tok-abcdefghijklmnopqrstu"
#: what Windows refuses in a name: the characters, and device names with any extension
REFUSED_CHARACTERS = set('<>:"/\\|?*') | {chr(c) for c in range(32)}


def windows_accepts(name: str) -> bool:
    """Windows' own rules for one file name (Naming Files, Paths, and Namespaces)."""
    device = name.split(".", 1)[0].rstrip(" ").upper()
    return (bool(name) and not REFUSED_CHARACTERS & set(name) and name[-1] not in ". "
            and device not in {"CON", "PRN", "AUX", "NUL"}
            and not (len(device) == 4 and device[:3] in ("COM", "LPT") and device[3] in
                     "123456789¹²³"))


@pytest.mark.parametrize("name, expected", [
    ("what?", "what_"), ("a:b", "a_b"), ('say "hi"', "say _hi_"), ("tab\there", "tab_here"),
    ("CON", "_CON"), ("con", "_con"), ("nul.tar", "_nul.tar"), ("Com1", "_Com1"),
    ("LPT9 .x", "_LPT9 .x"), ("aux", "_aux"), ("console", "console"), ("COM10", "COM10"),
    ("name. . ", "name"), ("  spaced  ", "spaced"), ("..", ""), ("", ""), ("*", "_"),
    ("café", "café"),
])
def test_safe_file_name(name, expected):
    assert safe_file_name(name) == expected
    assert not expected or windows_accepts(expected)


def test_long_names_are_shortened_and_fallback_used():
    assert len(safe_file_name("x" * 1000)) == 200
    assert safe_file_name("...", "image") == "image"


@pytest.mark.parametrize("value", ["CON", "a/PRN.txt", "x?y/z:", "trailing./dot "])
def test_subfolders_and_stems_from_data_are_accepted_by_windows(value):
    assert all(windows_accepts(part) for part in safe_subfolder(value).split("/"))
    assert windows_accepts(file_stem(f"/photos/{value.replace('/', '_')}.jpg", 0))


def test_save_images_writes_reserved_names_under_names_windows_accepts(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    rng = np.random.default_rng(1)
    items = []
    for i, name in enumerate(["CON.jpg", "aux.png", "what?.png", "LPT1.tar.jpg"]):
        path = source / name.replace("?", "_q_")  # the source itself must exist here
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), np.uint8)).save(path)
        items.append(SaveItem(i, str(path), safe_subfolder("nul"), file_stem(name, i)))
    report = save_images(items, SaveOptions(str(tmp_path / "out")))
    names = sorted(os.path.basename(target) for _, target in report.written)
    assert names == ["_CON.png", "_LPT1.tar.png", "_aux.png", "what_.png"]
    assert all(os.path.basename(os.path.dirname(t)) == "_nul" for _, t in report.written)


def test_explain_overlays_are_named_as_windows_accepts(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from orangecontrib.deepimage.core import explain
    monkeypatch.setattr(explain, "overlay_image",
                        lambda explanation, max_side: np.zeros((4, 4, 3), np.uint8))
    sources = ["/p/CON.jpg", "https://x.org/a/what%3F.jpg?b", r"C:\pics\aux.png", "/p/con.png"]
    written = explain.save_overlays([SimpleNamespace(source=s) for s in sources], tmp_path)
    names = [os.path.basename(path) for path in written]
    assert names == ["_CON.png", "what%3F.png", "_aux.png", "_con-2.png"]
    assert all(windows_accepts(name) for name in names)


ENCODINGS = {  # how each program writes "TOKEN\r\n"
    "PowerShell Out-File (UTF-16 LE)": codecs.BOM_UTF16_LE + f"{TOKEN}\r\n".encode("utf-16-le"),
    "UTF-16 BE": codecs.BOM_UTF16_BE + f"{TOKEN}\r\n".encode("utf-16-be"),
    "Notepad (UTF-8 with BOM)": codecs.BOM_UTF8 + f"{TOKEN}\r\n".encode(),
    "UTF-32": f"{TOKEN}\n".encode("utf-32"),
    "plain UTF-8": f"{TOKEN}\n".encode(),
}


@pytest.mark.parametrize("program", ENCODINGS)
def test_token_files_from_any_editor_are_read(tmp_path, program):
    path = tmp_path / "token.txt"
    path.write_bytes(ENCODINGS[program])
    assert read_text(path).strip() == TOKEN
    assert read_token(str(path)) == TOKEN


@pytest.mark.parametrize("program", ["PowerShell Out-File (UTF-16 LE)",
                                     "Notepad (UTF-8 with BOM)"])
def test_the_server_reads_token_files_from_windows_editors(tmp_path, program):
    from orangecontrib.deepimage.server.config import Settings
    path = tmp_path / "tokens.txt"
    path.write_bytes(ENCODINGS[program])
    assert Settings(token_file=path).load_tokens() == [TOKEN]


def test_a_token_file_that_is_not_text_is_a_clear_error(tmp_path):
    path = tmp_path / "token.bin"
    path.write_bytes(b"\xff\xfe\xfe\xff\x00\xd8" * 3 + b"\x80\x81")
    with pytest.raises(OSError, match="not a text file"):
        read_token(str(path))


def test_printable_path_escapes_bytes_that_are_not_utf8():
    name = os.fsdecode(b"caf\xe9.jpg") if os.name != "nt" else "caf\udce9.jpg"
    assert printable_path(name) == "caf\\xe9.jpg"
    assert printable_path("café.jpg") == "café.jpg"
