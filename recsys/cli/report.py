"""``recsys-report DIR... [--out OUT] [--policy FILE] [--baseline SELECTOR]``.

Compare every run below the given directories (``outputs/``, a Hydra ``multirun/`` sweep, or
single run directories), gate them against a policy, recommend the cheapest pairing that
passes, and write ``results.csv``, ``report.md``, ``report.html`` and PNG figures into OUT.

Bad input (a missing directory, no ``result.json`` at all, a policy naming an unknown metric,
a baseline matching no run) ends with one line ``recsys-report: error: ...`` and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from recsys.errors import RecsysError

PROG = "recsys-report"
DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "conf" / "policy" / "default.yaml"
EXIT_USER_ERROR = 2
EXIT_NO_USABLE_RUN = 1


def parse_selector(text: str) -> str | dict[str, str]:
    """``pipeline_contains=neural_full`` (or ``run=3``, ``label=...``, comma-separated) -> a
    mapping; anything else names a run (directory name or path suffix) or an exact label."""
    if "=" not in text:
        return text
    selector = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in ("run", "label", "pipeline_contains"):
            return text
        selector[key.strip()] = value.strip()
    return selector


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Compare recsys-sim runs and recommend the cheapest pairing that meets "
        "the policy's constraints.",
    )
    p.add_argument("dirs", nargs="+", metavar="DIR", help="run, outputs/ or multirun/ directories")
    p.add_argument("--out", default="report", help="output directory (default: ./report)")
    p.add_argument(
        "--policy",
        default=str(DEFAULT_POLICY),
        help="policy YAML (default: conf/policy/default.yaml)",
    )
    p.add_argument(
        "--baseline",
        help="baseline run: a run name/directory, an exact pairing label, or "
        "pipeline_contains=KIND[,run=NAME] (overrides the policy's baseline)",
    )
    return p


def _fail(message: str) -> int:
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return EXIT_USER_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 no usable run, 2 bad input)."""
    args = parser().parse_args(argv)
    # Imported here so that --help and argument errors answer without loading matplotlib.
    from recsys.gate import Policy
    from recsys.report.compare import compare, write_report

    try:
        policy = Policy.load(args.policy)
        baseline = parse_selector(args.baseline) if args.baseline else None
        comparison = compare(args.dirs, policy, baseline)
        files = write_report(comparison, args.out)
    except RecsysError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"{exc.filename or ''}: {exc.strerror or exc}")
    runs, rec = comparison.runs, comparison.recommendation
    print(f"{len(runs)} run(s) compared, {len(runs.failed)} failed or incomplete")
    if rec.chosen is not None:
        print(f"recommended: {rec.chosen.label} ({rec.chosen.name})")
    else:
        print(rec.reasons[0])
    print(f"wrote {files['report.html']} and {len(files) - 1} other file(s) in {args.out}")
    if not len(runs):
        _fail(f"none of the {len(runs.failed)} run(s) found is usable; see {files['report.md']}")
        return EXIT_NO_USABLE_RUN
    return 0


if __name__ == "__main__":
    sys.exit(main())
