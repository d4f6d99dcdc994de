"""Each bad input of tests/cli/bad_inputs.py, run from the command line: a non-zero exit, one short line without a
traceback that names what is wrong, and no new or changed file; accepted inputs (and the control) succeed."""

from __future__ import annotations

import pytest

from tests.cli.bad_inputs import CASES, run_cases


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Every case, run two at a time (each a separate process as a user would start it)."""
    return run_cases(CASES, tmp_path_factory.mktemp("bad_inputs"))


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_gets_one_clear_line_and_changes_nothing(case, outcomes):
    outcome = outcomes[case.name]
    if case.accepted:
        assert outcome.returncode == 0, outcome.message
        assert any(path.endswith(".ckpt") for path in outcome.changed)
        return
    assert outcome.returncode != 0
    assert not outcome.traceback, outcome.message
    assert outcome.message.startswith("error: ") and len(outcome.message) < 400, outcome.message
    assert case.expect.lower() in outcome.message.lower(), outcome.message
    # A download or mirror file that fails its sha256 is kept aside as *.rejected (for the user to inspect), by design.
    assert [path for path in outcome.changed if not path.endswith(".rejected")] == [], outcome.changed
