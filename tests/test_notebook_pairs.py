"""Each notebook is kept twice (jupytext pairing, ``formats: ipynb,py:percent``): the ``.ipynb`` CI runs and the
``.py`` a reviewer diffs. An edit made on one side only leaves the other describing a different notebook."""
from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_paired_py_holds_the_same_cells_as_the_notebook(ipynb):
    py = ipynb.with_suffix(".py")
    assert py.exists(), f"{py.name} is missing: run `jupytext --to py:percent {ipynb.name}`"
    cells = [[(c.cell_type, c.source.strip()) for c in jupytext.read(p).cells] for p in (ipynb, py)]
    assert cells[0] == cells[1], f"{py.name} and {ipynb.name} differ: run `jupytext --sync` on the side you edited"
