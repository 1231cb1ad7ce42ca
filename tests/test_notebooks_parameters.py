"""Every notebook starts with a papermill parameters cell of literals that papermill can read."""

import ast
import logging
from pathlib import Path

import nbformat
import pytest
from papermill.inspection import inspect_notebook

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REQUIRED = {"profile", "data_root", "out_dir"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_first_code_cell_is_a_parameters_cell_of_typed_literals(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    names = set()
    for node in ast.parse(code[0].source).body:
        assert isinstance(node, ast.AnnAssign), ast.unparse(node)
        ast.literal_eval(node.value)  # literals only: papermill would leave a derived value stale
        names.add(node.target.id)
    assert REQUIRED <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_papermill_reads_every_parameter(path, caplog):
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    declared = {n.target.id for n in ast.parse(first.source).body}
    with caplog.at_level(logging.WARNING, logger="papermill"):
        found = inspect_notebook(str(path))
    assert set(found) == declared
    assert not [r for r in caplog.records if "Unable to parse" in r.getMessage()]
