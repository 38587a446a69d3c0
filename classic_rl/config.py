"""Typed configs and their command line.

A config is a dataclass whose fields carry a docstring (the string literal right after the field, as in
CleanRL). `parse_config` turns it into an argparse CLI with one `--kebab-case` flag per field and the
docstring as help text, so `--help` documents every flag without a second copy of the docs.

Per-environment defaults ("presets", e.g. the paper's tuned hyperparameters for Hopper) are applied
before the user's flags: `--env Hopper --lr 3e-4` uses Hopper's preset with the learning rate overridden.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import math
import sys
import textwrap
import typing
from typing import Any, Callable, Literal, Sequence, TypeVar

from classic_rl import TrainingDiverged, UserError

C = TypeVar("C")


def field_docs(cls: type) -> dict[str, str]:
    """Map field name -> the docstring written under it, collected over the class and its bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:] + [None]):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                if isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant) \
                        and isinstance(nxt.value.value, str):
                    docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _add_field(parser: argparse.ArgumentParser, f: dataclasses.Field, hint: Any, default: Any, doc: str):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    optional = False
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", typing.Union)) and type(None) in args:
        optional = True
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    help_text = f"{doc} (default: {default!r})" if doc else f"(default: {default!r})"
    help_text = help_text.replace("%", "%%")  # argparse %-formats help strings ("1% gap" would crash --help)
    kwargs: dict[str, Any] = {"dest": f.name, "default": default, "help": help_text}
    if hint is bool:
        parser.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, **kwargs)
        return
    if origin is Literal:
        kwargs["choices"] = list(args)
        kwargs["type"] = type(args[0])
    elif origin in (list, tuple, Sequence):
        inner = args[0] if args else str
        kwargs["type"] = inner
        kwargs["nargs"] = "*" if optional else "+"
    elif hint in (int, float, str):
        kwargs["type"] = hint
    else:
        kwargs["type"] = str
    kwargs["metavar"] = (f.name.upper() if "choices" not in kwargs else None)
    if kwargs["metavar"] is None:
        del kwargs["metavar"]
    if optional and kwargs.get("type") in (int, float, str):
        inner = kwargs["type"]
        kwargs["type"] = lambda s, _t=inner: None if s.lower() == "none" else _t(s)
    parser.add_argument(_flag(f.name), **kwargs)


def build_parser(cls: type, defaults: dict[str, Any] | None = None, prog: str | None = None,
                 description: str | None = None) -> argparse.ArgumentParser:
    defaults = defaults or {}
    parser = argparse.ArgumentParser(
        prog=prog, description=description or (inspect.getdoc(cls) or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.name in defaults:
            default = defaults[f.name]
        elif f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = None
        _add_field(parser, f, hints[f.name], default, docs.get(f.name, ""))
    return parser


def parse_config(cls: type[C], argv: Sequence[str] | None = None,
                 presets: Callable[[str], dict[str, Any]] | None = None,
                 prog: str | None = None, description: str | None = None, preset_field: str = "env") -> C:
    """Parse `argv` into an instance of dataclass `cls`.

    `presets(name)` returns per-environment defaults; it is looked up from the `--env` value (or the
    class's default env; `preset_field` names another field, e.g. "dataset") before the full parse, so
    `--help --env Hopper` shows Hopper's defaults.
    Invalid values exit with status 2 and a one-line message (argparse's behaviour), never a traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    defaults: dict[str, Any] = {}
    parser = build_parser(cls, prog=prog, description=description)
    flag = _flag(preset_field)
    if presets is not None and any(f.name == preset_field for f in dataclasses.fields(cls)):
        pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        pre.add_argument(flag, dest="key",
                         default=next(f.default for f in dataclasses.fields(cls) if f.name == preset_field))
        known, _ = pre.parse_known_args(argv)
        try:
            defaults = presets(known.key)
        except UserError as err:
            if "-h" in argv or "--help" in argv:
                defaults = {}
            else:
                parser.error(str(err))
        note = f"\n\nThe defaults shown are those for {flag} {known.key}." if defaults else ""
        parser = build_parser(cls, defaults=defaults, prog=prog,
                              description=(description or inspect.getdoc(cls) or "") + note)
    ns = parser.parse_args(argv)
    try:
        cfg = cls(**vars(ns))
        validate = getattr(cfg, "validate", None)
        if validate is not None:
            validate()
    except (UserError, ValueError, TypeError) as err:
        parser.error(str(err))
    return cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def require(condition: bool, message: str) -> None:
    """Raise a UserError with `message` unless `condition` holds (for config `validate` methods)."""
    if not condition:
        raise UserError(message)


def run_cli(main: Callable[[Sequence[str] | None], Any], argv: Sequence[str] | None = None) -> int:
    """Run an entry point: a UserError becomes one 'error: ...' line and exit status 2, a diverged run
    (TrainingDiverged) one 'diverged: ...' line and exit status 3; no traceback."""
    try:
        main(argv)
    except TrainingDiverged as err:
        print(f"diverged: {err}", file=sys.stderr)
        return 3
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


@dataclasses.dataclass
class RunConfig:
    """Flags every training entry point shares (algorithm configs inherit from this)."""

    env: str = "Hopper"
    """environment: a short name (Humanoid, Hopper, Pong, CartPole, ...) or any registered gymnasium id"""
    seed: int = 1
    """random seed for torch, numpy and the environments; same seed + same machine (CPU) = same numbers"""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """training device: auto picks cuda when available"""
    total_steps: int = 1_000_000
    """environment steps to train for, summed over the parallel envs"""
    n_envs: int = 1
    """number of parallel training environments"""
    eval_every: int = 50_000
    """run a deterministic evaluation every this many env steps (0 = only at the end)"""
    eval_episodes: int = 10
    """episodes per evaluation, split evenly over the evaluation envs"""
    run_dir: str = "runs"
    """root folder; each run gets runs/<algo>/<env>/<seed>-<timestamp>/ (never overwritten)"""
    resume: typing.Optional[str] = None
    """continue the run in this run directory from its latest checkpoint"""
    track: Literal["csv", "tensorboard"] = "csv"
    """extra logging backend; CSV files are always written"""
    checkpoint_every: int = 0
    """save a checkpoint every this many env steps (0 = only at the end)"""
    torch_threads: int = 1
    """torch CPU threads; 1 is fastest for small MLPs (0 = torch's default, all cores, for CNNs)"""
    progress: bool = True
    """show a terminal progress bar"""

    def validate(self) -> None:
        require(self.total_steps > 0, f"--total-steps must be positive, got {self.total_steps}")
        require(self.n_envs > 0, f"--n-envs must be positive, got {self.n_envs}")
        require(self.eval_every >= 0, f"--eval-every must be >= 0, got {self.eval_every}")
        require(self.eval_episodes >= 1, f"--eval-episodes must be >= 1, got {self.eval_episodes}")
        require(self.checkpoint_every >= 0, f"--checkpoint-every must be >= 0, got {self.checkpoint_every}")
        require(self.torch_threads >= 0, f"--torch-threads must be >= 0, got {self.torch_threads}")
        for f in dataclasses.fields(self):  # inf/nan pass most range checks (`lr > 0`) and then kill the run
            value = getattr(self, f.name)
            values = value if isinstance(value, (list, tuple)) else [value]
            bad = [v for v in values if isinstance(v, float) and not math.isfinite(v)]
            require(not bad, f"--{f.name.replace('_', '-')} must be finite, got {value}")


def explicit_fields(cls: type, argv: Sequence[str]) -> set[str]:
    """Names of the fields whose flags appear in argv (used to let a resumed run override a few)."""
    names = {f.name for f in dataclasses.fields(cls)}
    found = set()
    for tok in argv:
        if not tok.startswith("--"):
            continue
        name = tok[2:].split("=", 1)[0].replace("-", "_")
        if name not in names and name.startswith("no_"):
            name = name[3:]
        if name in names:
            found.add(name)
    return found
