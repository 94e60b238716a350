"""`just mutants` only means something while each hand mutation still
applies: its text must occur exactly once in the file it names."""

from __future__ import annotations

import pytest
from conftest import ROOT
from mutants import MUTATIONS, Mutation


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[mutation.what for mutation in MUTATIONS])
def test_each_mutation_applies(mutation: Mutation) -> None:
    assert (ROOT / "py_host" / mutation.file).read_text().count(mutation.old) == 1
