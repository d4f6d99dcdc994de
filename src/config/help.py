"""``python -m src.<task> --help``: what the task does, examples, its own keys with their defaults and comments,
and its config groups. All of it is read from the task's entry config (conf/<task>.yaml: the leading comment
its key lines, the groups of its defaults list), so each text is written once.
"""

from __future__ import annotations

import re

from src.config import PROJECT_ROOT

CONF = PROJECT_ROOT / "conf"
_KEY = re.compile(r"^[a-z_]+:")
_ENTRY = re.compile(r"^\s*-\s*(?:override\s+|optional\s+)?(?P<group>[\w/]+)(@(?P<package>[\w.]+))?:\s*(?P<option>\w+)")
_NOT_LISTED = ("hydra", "paths")  # run folders and paths: rarely chosen, explained in the docs
_KEYS_LISTED = ("inference",)  # groups whose keys are listed with the task's own (inference.tile_size, ...)


def _key_lines(lines: list[str]) -> list[str]:
    """Top-level ``key: default  # comment`` lines, with their indented comment continuations."""
    kept: list[str] = []
    in_key = False
    for line in lines:
        if _KEY.match(line) and not line.startswith(("defaults:", "hydra:", "task_name:")):
            kept.append(line)
            in_key = True
        elif in_key and line.strip().startswith("#") and line.startswith(" "):
            kept.append(line)
        else:
            in_key = False
    return kept


def task_help(task: str) -> str:
    """The help text of ``src.<task>`` (a Hydra help template, so ``$`` is escaped)."""
    lines = (CONF / f"{task}.yaml").read_text().splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line[2:] if line.startswith("# ") else line[1:])
    keys = _key_lines(lines)
    groups: dict[str, str] = {}
    for line in lines:
        found = _ENTRY.match(line)
        if not found or found["group"] in groups:
            continue
        folder = CONF / found["group"]
        if found["package"] == "_here_" or found["group"] in _KEYS_LISTED:
            prefix = "" if found["package"] == "_here_" else f"{found['group']}."
            group_keys = _key_lines((folder / f"{found['option']}.yaml").read_text().splitlines())
            keys += [prefix + line if _KEY.match(line) else " " * len(prefix) + line for line in group_keys]
        elif folder.is_dir() and not found["group"].startswith(_NOT_LISTED):
            options = ", ".join(sorted(path.stem for path in folder.glob("*.yaml")))
            default = "not set" if found["option"] == "null" else found["option"]
            groups[found["group"]] = f"{found['group']}: {options} (default: {default})"
    text = "\n".join(
        [
            *header,
            "",
            "== Keys (key=value; ??? = required) ==",
            *keys,
            "",
            *(["== Config groups (group=option) ==", *groups.values(), ""] if groups else []),
            f"Any key of the composed config can be set too (group.key=value); python -m src.{task} --cfg job "
            "prints it whole. --hydra-help: Hydra's own flags.",
        ]
    )
    return text.replace("$", "$$")
