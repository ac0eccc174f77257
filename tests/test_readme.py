"""The README's set-up commands are the ones CI runs, and the CLI's flags are frozen."""
import re
from pathlib import Path

from mlperf_train.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]

# New knobs belong in hparams files and rules, not on the command line.
FROZEN_FLAGS = {
    "list": {"--ruleset"},
    "prepare": {"--source", "--data", "--hparams"},
    "run": {"--hparams", "--data", "--runs", "--seed", "--output", "--system", "--ruleset", "--division"},
    "validate": {"--ruleset", "--division"},
    "check": {"--ruleset"},
    "score": {"--ruleset", "--json", "--csv"},
    "roofline": {"--output", "--system", "--device"},
    "report": {"--output"},
}


def readme_commands():
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text(), flags=re.S)


def test_ci_runs_the_readme_test_command():
    test_command = readme_commands()[1]
    assert "pytest" in test_command
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_readme_first_command_runs_the_embedded_default():
    assert "mlperf-train run ncf" in readme_commands()[0]


def test_cli_flags_are_frozen():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    found = {}
    for name, sub in subparsers.choices.items():
        found[name] = {opt for a in sub._actions for opt in a.option_strings if opt.startswith("--")} - {"--help"}
    assert found == FROZEN_FLAGS
