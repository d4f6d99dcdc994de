"""The evaluation report in markdown: headline scores, post-processing, the threshold sweep, each slice."""

from __future__ import annotations

from typing import Any


def _f(value: Any, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _scores(result: dict) -> list[str]:
    thresholds = f"{_f(result['threshold'], 1)} / {_f(result['vinfo_threshold'], 1)}"
    methods = [
        [
            "threshold sweep (challenge protocol)",
            _f(result["vrand"]),
            _f(result["vinfo"]),
            thresholds,
            _f(result["pixel_error"]),
        ]
    ]
    for name, scores in result.get("postprocess", {}).items():
        methods.append(
            [
                f"{name} ({scores['description']})",
                _f(scores["vrand"]),
                _f(scores["vinfo"]),
                "–",
                _f(scores["pixel_error"]),
            ]
        )
    return _table(["method", "V_rand", "V_info", "threshold", "pixel error"], methods)


def _sweep(result: dict) -> list[str]:
    rows = [
        [_f(r["threshold"], 1), _f(r["vrand"]), _f(r["vinfo"]), _f(r["rand_split"]), _f(r["rand_merge"])]
        for r in result["per_threshold"]
    ]
    return _table(["threshold", "V_rand", "V_info", "Rand split", "Rand merge"], rows)


def _slices(result: dict) -> list[str]:
    post = result.get("postprocess", {})
    header = ["slice", "V_rand", "V_info", "Rand split", "Rand merge", "pixel error"]
    header += [f"V_rand ({name})" for name in post]
    by_slice = {name: {s["slice"]: s for s in scores["per_slice"]} for name, scores in post.items()}
    rows = []
    for s in result["per_slice"]:
        row = [str(s["slice"])] + [_f(s[k]) for k in ("vrand", "vinfo", "rand_split", "rand_merge", "pixel_error")]
        rows.append(row + [_f(by_slice[name][s["slice"]]["vrand"]) for name in post])
    return _table(header, rows)


def markdown_report(result: dict, figure: str | None = None) -> str:
    """Markdown text of an evaluation ``result`` (the dict ``src.eval`` writes to ``metrics.json``)."""
    lines = [
        "# Evaluation report",
        "",
        f"- checkpoint: `{result['checkpoint']}`",
        f"- slices: {', '.join(str(s) for s in result['slices'])} ({len(result['slices'])} held-out slices)",
        f"- best method by V_rand: **{result['best_method']}**",
        "",
        "V_rand and V_info are the ISBI 2012 challenge's foreground-restricted scores after border thinning",
        "(Arganda-Carreras et al. 2015), averaged over slices; the threshold sweep reports the best threshold",
        "(V_rand's / V_info's). Post-processed cells are scored by the same protocol without a sweep; their",
        "pixel error counts only their border pixels (0) as membrane, so a watershed's thin lines raise it.",
        "These slices come from the challenge's training stack, so the numbers are not the challenge's",
        "test-set leaderboard (U-Net paper: V_rand 0.97276, V_info 0.98662 there).",
        "",
        "## Scores",
        "",
        *_scores(result),
        "",
        "## Threshold sweep",
        "",
        *_sweep(result),
        "",
        "## Per slice",
        "",
        *_slices(result),
    ]
    if figure:
        lines += ["", "## Figure", "", f"![input, label, output and merge/split errors]({figure})"]
    return "\n".join(lines) + "\n"
