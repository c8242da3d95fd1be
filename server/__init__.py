"""The Orange3-DeepImage embedding server (FastAPI).

Installed as `orangecontrib.deepimage.server` (setup.py maps this folder there), so
`deepimage serve` works from any installation. Imports only
orangecontrib.deepimage.core: never Qt, never Orange's GUI.
"""
