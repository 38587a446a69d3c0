"""Markdown tables of the toolkit's datasets and behaviour policies found under a Minari root.

    python -m envs.offline.report                 # the default root ($MINARI_DATASETS_PATH or ~/.minari/datasets)
    python -m envs.offline.report --root DIR

One row per dataset (from its metadata): transitions, episodes, collection and total generation seconds,
average return, normalized with the toolkit's references and with D4RL's constants, and D4RL's own dataset
average for the same level; one row per behaviour policy: PPO budget, training wall time, medium and expert
checkpoints, reference returns.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from classic_rl.config import run_cli
from envs.offline.common import ENVS, LEVELS, METADATA_KEY, datasets_root, state_dir


def dataset_rows(root: Path) -> list[dict]:
    rows = []
    for env in ENVS:
        for level in LEVELS:
            meta_path = root / "classic-rl" / env / f"{level}-v0" / "data" / "metadata.json"
            if not meta_path.exists():
                continue
            try:
                meta = json.loads(meta_path.read_text())[METADATA_KEY]
            except (OSError, json.JSONDecodeError, KeyError):
                continue
            rows.append({"id": f"{env}-{level}", **meta})
    return rows


def behaviour_rows(root: Path) -> list[dict]:
    rows = []
    bdir = state_dir(root) / "behaviour"
    for d in sorted(bdir.glob("*")) if bdir.exists() else []:
        summ = d / "summary.json"
        if not summ.exists():
            continue
        s = json.loads(summ.read_text())
        wall = None
        for run_summary in d.glob("runs/ppo/*/*/summary.json"):
            try:
                wall = json.loads(run_summary.read_text()).get("wall_time")
            except (OSError, json.JSONDecodeError):
                pass
        rows.append({**s, "train_wall_s": wall})
    return rows


def _f(x, nd=1):
    return "" if x is None else f"{x:.{nd}f}"


def markdown(root: Path) -> str:
    out = ["| dataset | transitions | episodes (term./trunc.) | collection s | total s | avg return | "
           "normalized (toolkit) | normalized (D4RL constants) | D4RL's dataset |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in dataset_rows(root):
        out.append(f"| {r['id']} | {r['transitions']:,} | {r['episodes']} ({r['terminations']}/{r['truncations']}) "
                   f"| {_f(r.get('collect_seconds'), 0)} | {_f(r.get('generation_seconds'), 0)} | "
                   f"{_f(r['avg_return'])} | {_f(r['avg_normalized_score'])} | "
                   f"{_f(r['avg_d4rl_normalized_score'])} | {r.get('d4rl_dataset_normalized_score') or ''} |")
    out += ["", "| behaviour policy | PPO env steps | training wall s | references s | medium checkpoint "
                "(eval return) | expert checkpoint | ref min | ref max |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for b in behaviour_rows(root):
        med = b["checkpoint_eval_returns"].get(str(b["medium_step"]))
        out.append(f"| {b['env']} seed {b['seed']} | {b['total_steps']:,} | {_f(b['train_wall_s'], 0)} | "
                   f"{_f(b.get('reference_seconds'), 0)} | {b['medium_step']:,} ({_f(med)}) | {b['expert_step']:,} | "
                   f"{_f(b['ref_min'])} | {_f(b['ref_max'])} |")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m envs.offline.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="Minari datasets root (default: MINARI_DATASETS_PATH or "
                                                "~/.minari/datasets)")
    a = p.parse_args(argv)
    root = Path(a.root) if a.root else datasets_root()
    print(f"datasets root: {root}\n")
    print(markdown(root))


if __name__ == "__main__":
    sys.exit(run_cli(main))
