#!/usr/bin/env bash
# Build the wheel and smoke-test it installed in a clean environment, as Orange's
# Add-ons dialog installs it (`make smoke-wheel`; CI runs it).
#
# The environment is a fresh venv holding only the wheel. Its dependencies (torch,
# Orange, PyQt6, ... several GB) are borrowed from the project's .venv through a .pth
# file pointing at a folder of links to .venv's site-packages that leaves out
# Orange3-DeepImage itself (its editable install, metadata and package), so the add-on
# can only come from the wheel. `pip check` then proves the wheel's requirements are met.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
WORK=${SMOKE_DIR:-$(mktemp -d -t deepimage-smoke.XXXXXX)}
trap 'rm -rf "$WORK"' EXIT

# 1. the wheel, with the documentation site (doc/_build/html, `make docs`) inside
test -f doc/_build/html/index.html || { echo "run 'make docs' first" >&2; exit 1; }
rm -rf build
DEEPIMAGE_REQUIRE_HELP=1 "$PY" -m pip wheel -q --no-deps -w "$WORK/dist" .
WHEEL=$(ls "$WORK"/dist/orange3_deepimage-*.whl)
"$PY" - "$WHEEL" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
help_pages = [n for n in names if n.startswith("orangecontrib/deepimage/help/widgets/")]
digits = [n for n in names if n.startswith("orangecontrib/deepimage/tutorials/digits/")]
assert help_pages and len(digits) == 500, (len(help_pages), len(digits))
print(f"ok  {sys.argv[1].rsplit('/', 1)[1]}: {len(names)} files, "
      f"{len(help_pages)} widget help pages, {len(digits)} lesson digits")
EOF

# 2. a clean venv with the wheel; dependencies linked from .venv without the add-on
SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_path('purelib'))")
DEPS="$WORK/deps"
mkdir -p "$DEPS/orangecontrib"
for entry in "$SITE"/*; do
  name=$(basename "$entry")
  case "$name" in
    orangecontrib) for sub in "$entry"/*; do
                     [ "$(basename "$sub")" = deepimage ] || ln -s "$sub" "$DEPS/orangecontrib/"
                   done ;;
    orange3_deepimage-*|__editable__*orange3_deepimage*) ;;
    *) ln -s "$entry" "$DEPS/$name" ;;
  esac
done
"$PY" -m venv --without-pip "$WORK/env"
ENV_PY="$WORK/env/bin/python"
ENV_SITE=$("$ENV_PY" -c "import sysconfig; print(sysconfig.get_path('purelib'))")
echo "import site; site.addsitedir('$DEPS')" > "$ENV_SITE/deepimage-smoke-deps.pth"
"$ENV_PY" -m pip install -q --no-deps --no-index "$WHEEL"
"$ENV_PY" -m pip check

# 3. the checks, from outside the checkout
cd "$WORK"
HOME="$WORK/home" "$ENV_PY" "$ROOT/tools/smoke_installed.py"
