"""The evaluation report's markdown tables."""

import numpy as np
import pytest

from src.evaluation.report import markdown_report
from src.metrics.isbi import score_probabilities


def test_markdown_report_tables(isbi_stack):
    labels = isbi_stack[1][:2]
    scores = score_probabilities((labels > 0) * np.float32(0.8), labels, slice_ids=[5, 6])
    result = {**scores, "checkpoint": "/x.ckpt", "slices": [5, 6], "best_method": "threshold", "postprocess": {}}
    text = markdown_report(result, "figures/test_slices.png")
    assert "| threshold sweep (challenge protocol) | 1.0000 | 1.0000 |" in text
    assert "| 5 | 1.0000 |" in text and "| 6 | 1.0000 |" in text
    assert sum(line.startswith("| 0.") for line in text.splitlines()) == len(scores["per_threshold"])
    assert "![" in text and scores["vrand"] == pytest.approx(1.0)
