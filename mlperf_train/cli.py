"""``mlperf-train`` subcommands: list, prepare, run, validate, check, score, roofline, report.

The flag set is frozen (a test pins it): new knobs go into hparams files and rules.
Bad input ends with one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlperf_train.errors import UsageError
from mlperf_train.rules import RULESETS

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mlperf-train", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    listing = commands.add_parser("list", help="the benchmarks and their rules, per ruleset")
    listing.add_argument("--ruleset", choices=RULESETS)

    prepare = commands.add_parser("prepare", help="one-time, untimed preprocessing of a real dataset")
    prepare.add_argument("benchmark")
    prepare.add_argument("--source", type=Path, required=True, help="the downloaded dataset")
    prepare.add_argument("--data", type=Path, required=True, help="where the prepared data goes")
    prepare.add_argument("--hparams", type=Path, help="preset whose settings apply (default: reference)")

    run = commands.add_parser("run", help="train to the quality target, timed by the rules")
    run.add_argument("benchmark")
    run.add_argument("--hparams", type=Path, help="hparams file (default: hparams/<bench>/small.yaml)")
    run.add_argument("--data", type=Path, help="prepared dataset (default: generated small data)")
    run.add_argument("--runs", type=_positive_int, help="number of runs (default: the ruleset's)")
    run.add_argument("--seed", type=int, help="seed of run 0; run i uses seed+i (default: random)")
    run.add_argument("--output", type=Path, default=Path("logs"), help="log root (default: logs/)")
    run.add_argument("--system", help="system name in the log layout (default: <ranks>x<device>)")
    run.add_argument("--ruleset", choices=RULESETS, help="default: the newest with this benchmark")
    run.add_argument("--division", choices=("closed", "open"), default="closed")

    validate = commands.add_parser("validate", help="check hparams files against the whitelist")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("--ruleset", choices=RULESETS)
    validate.add_argument("--division", choices=("closed", "open"), default="closed")

    check = commands.add_parser("check", help="compliance-check result logs")
    check.add_argument("logs", nargs="+", metavar="LOG")
    check.add_argument("--ruleset", choices=RULESETS)

    score = commands.add_parser("score", help="score folders of result_*.txt by the rules")
    score.add_argument("folders", nargs="+", metavar="FOLDER")
    score.add_argument("--ruleset", choices=RULESETS)
    output = score.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true")
    output.add_argument("--csv", action="store_true")

    roofline = commands.add_parser("roofline", help="measure this device's GEMM/conv peak and memory bandwidth")
    roofline.add_argument("--output", type=Path, default=Path("logs"), help="log root (default: logs/)")
    roofline.add_argument("--system", help="system name of the logs it belongs to (default: <ranks>x<device>)")
    roofline.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")

    report = commands.add_parser("report", help="an HTML page and a JSON file from result folders")
    report.add_argument("folders", nargs="+", metavar="FOLDER")
    report.add_argument("--output", type=Path, default=Path("report"), help="where report.html and "
                        "report.json go (default: report/)")
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _list(args) -> int:
    from mlperf_train.listing import print_table

    print_table(args.ruleset)
    return 0


def _prepare(args) -> int:
    from mlperf_train.prepare import prepare

    prepare(args.benchmark, args.source, args.data, args.hparams)
    return 0


def _run(args) -> int:
    from mlperf_train.distributed import RunEnv
    from mlperf_train.series import SeriesConfig, run_series

    config = SeriesConfig(benchmark=args.benchmark, hparams=args.hparams, data=args.data, runs=args.runs,
                          seed=args.seed, output=args.output, system=args.system, ruleset=args.ruleset,
                          division=args.division)
    env = RunEnv.from_environment()
    try:
        return run_series(config, env)
    finally:
        env.shutdown()


def _validate(args) -> int:
    from mlperf_train import validate

    return validate.main(args)


def _check(args) -> int:
    from mlperf_train import compliance

    return compliance.main(args)


def _score(args) -> int:
    from mlperf_train import score

    return score.main(args)


def _roofline(args) -> int:
    from mlperf_train import roofline

    return roofline.main(args)


def _report(args) -> int:
    from mlperf_train import report

    return report.main(args)


COMMANDS = {"list": _list, "prepare": _prepare, "run": _run, "validate": _validate,
            "check": _check, "score": _score, "roofline": _roofline, "report": _report}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UsageError as error:
        for line in str(error).splitlines() or ["invalid input"]:
            print(f"mlperf-train {args.command}: {line}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `mlperf-train score ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
