"""One judgement of a run for `score` and `check` (issue 12): each input of
tests/data/results_rules with its right answer, then other inputs of the same kinds
(other benchmarks, v0.5 and v0.6 logs, other schedules, other spellings)."""
import json
import re
import shutil
import types
from pathlib import Path

import pytest

from mlperf_train import cli, score, verdict
from test_results import FIXTURES

BUGS = Path(__file__).resolve().parent / "data" / "results_rules"
V07 = FIXTURES / "v0.7"
SSD07 = V07 / "NVIDIA/results/dgx1_ngc20.06_pytorch/ssd"
MASKRCNN07 = V07 / "Google/results/tpu-v4-16-TF/maskrcnn/result_0.txt"
GNMT07 = V07 / "Google/results/tpu-v4-16-TF/gnmt/result_0.txt"
MINIGO07 = V07 / "Google/results/tpu-v4-128-TF/minigo/result_0.txt"
TRANSFORMER06 = FIXTURES / "v0.6/NVIDIA/results/dgx1_ngc19.05_pytorch/transformer/result_0.txt"
GNMT05 = FIXTURES / "v0.5/v0.5.0/google/cloud_v2.8/gnmt-tpuv2-8/results/tpu/gnmt/result_0.txt"
RESNET_LOG = BUGS / "01-success-flag-below-target" / "result_0.txt"


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def check_lines(capsys, path):
    code, out, err = run(capsys, "check", path)
    assert err == "" and all(line.startswith(f"{path}: ") for line in out)
    return code, [line[len(str(path)) + 2:] for line in out]


def edit(text, key, value, nth=None):
    """``text`` with the value of every (or the nth) ``key`` line replaced by ``value`` (JSON text)."""
    pattern = re.compile(rf'("key": "{key}", "value": )(\{{[^}}]*\}}|\[[^\]]*\]|"[^"]*"|[^,}}]*)')
    matches = list(pattern.finditer(text))
    assert matches, key
    for m in reversed(matches if nth is None else [matches[nth]]):
        text = text[:m.start(2)] + value + text[m.end(2):]
    return text


def write(tmp_path, text, name="result_0.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


def mllog(time_ms, key, value=None, **metadata):
    return ":::MLLOG " + json.dumps({"namespace": "", "time_ms": time_ms, "event_type": "POINT_IN_TIME",
                                     "key": key, "value": value, "metadata": metadata})


# --- 01: convergence is judged from the evaluations, against the ruleset's target -------
def test_01_success_flag_below_target(capsys):
    folder = BUGS / "01-success-flag-below-target"
    code, out, _ = run(capsys, "score", folder)
    row = out[1].split()
    assert code == 0 and row[4:7] == ["4", "21.617", "True"]
    assert out[2] == (f"{folder}/result_2.txt: no evaluation reached the target 0.7590 (best 0.7532 at epoch 21) "
                      f"(rules 0.7.0 table; the official checker fails it too) (+1 more: mlperf-train check lists them)")
    for i in range(5):
        code, lines = check_lines(capsys, folder / f"result_{i}.txt")
        assert (code == 0) == (i != 2) and (not lines) == (i != 2)


def test_a_run_that_reached_the_target_counts_whatever_its_status_says(tmp_path):
    text = RESNET_LOG.read_text().replace('"status": "success"', '"status": "aborted"')
    judged = verdict.judge(write(tmp_path, text))
    assert judged.converged and judged.minutes == pytest.approx(verdict.judge(RESNET_LOG).minutes)


@pytest.mark.parametrize("source, key, value, best", [
    (SSD07 / "result_0.txt", "eval_accuracy", "0.2299", "best 0.2299 at epoch 40"),          # SSD, one value
    (MASKRCNN07, "eval_accuracy", '{"BBOX": 0.380, "SEGM": 0.3389}', "BBOX 0.3800, SEGM 0.3389"),   # both at one eval
    (GNMT07, "eval_accuracy", "0.2399", "best 0.2399"),                                         # BLEU / 100
])
def test_other_benchmarks_below_target_do_not_converge(tmp_path, source, key, value, best):
    judged = verdict.judge(write(tmp_path, edit(source.read_text(), key, value)))
    assert not judged.converged
    assert any("no evaluation reached the target" in str(f) and best in str(f) for f in judged.findings)


def test_v06_bleu_written_as_a_string_is_judged_by_its_value(tmp_path):
    # NVIDIA's v0.6 Transformer logged "25.33"; the 0.6.0 checker has no target check at all.
    assert verdict.judge(TRANSFORMER06).converged
    text = re.sub(r'(eval_accuracy: \{"value": )"[0-9.]+"', r'\1"24.99"', TRANSFORMER06.read_text())
    judged = verdict.judge(write(tmp_path, text))
    assert [str(f) for f in judged.findings] == [
        "no evaluation reached the target 25.0000 (best 24.9900 at epoch 1) (rules 0.6.0 table, not checked by the official checker)"]


def test_v05_runs_are_judged_by_the_evaluations_too(tmp_path):
    text = GNMT05.read_text()
    assert verdict.judge(GNMT05).converged
    below = re.sub(r'(eval_accuracy: \{"value": )[0-9.]+', r"\g<1>21.7", text)      # success flag kept
    judged = verdict.judge(write(tmp_path, below))
    assert judged.findings[0].source == "rules 0.5.0 table; no official checker for this log"
    assert "no evaluation reached the target 21.8000" in judged.findings[0].text
    flag_false = text.replace('run_stop: {"success": true}', 'run_stop: {"success": false}')
    assert verdict.judge(write(tmp_path, flag_false)).converged


def test_a_small_preset_is_judged_by_its_own_target_and_cadence(tmp_path):
    base = SSD07.joinpath("result_0.txt").read_text()
    preset = mllog(0, "mlperf_train_preset", "small", ruleset="0.7.0", target=0.2, small=True)
    low = edit(base, "eval_accuracy", "0.21", nth=1)                  # below 0.23 at epoch 50, above 0.2
    assert verdict.judge(write(tmp_path, preset + "\n" + low)).converged
    assert not verdict.judge(write(tmp_path, low)).converged
    # its own cadence (at epochs 40 and 45 here): 50 is off it
    cadenced = mllog(0, "mlperf_train_preset", "small", ruleset="0.7.0", target=0.2, eval={"at_epochs": [40, 45]})
    judged = verdict.judge(write(tmp_path, cadenced + "\n" + low))
    assert any("reached only at epoch(s) 50" in str(f) and "preset 'small'" in str(f) for f in judged.findings)
    missed = verdict.judge(write(tmp_path, preset.replace("0.2,", "0.25,") + "\n" + base))
    assert "no evaluation reached the target 0.2500" in missed.findings[0].text
    assert missed.findings[0].source == ("rules 0.7.0 table: the target preset 'small' logs "
                                         "(mlperf_train_preset), not the ruleset's")


# --- 02: one run per file -----------------------------------------------------------------
def test_02_two_attempts_in_one_file(capsys):
    folder = BUGS / "02-two-attempts-one-file"
    code, out, _ = run(capsys, "score", folder)
    assert code == 1 and out[1].split()[4:7] == ["3", "-", "False"]
    assert "2 non-converged runs, at most 1 allowed" in out[1]
    assert out[3].startswith(f"{folder}/result_3.txt: holds two attempts: a second run_start 240.0 s after the first")
    code, lines = check_lines(capsys, folder / "result_3.txt")
    assert code == 1 and any(line.startswith("holds two attempts") for line in lines)


def test_a_relaunch_after_a_finished_run_of_another_benchmark(tmp_path):
    text = (SSD07 / "result_0.txt").read_text()
    judged = verdict.judge(write(tmp_path, text + text))           # the same run appended again
    assert not judged.converged and "holds two attempts" in judged.reason


# --- 03: the evaluation schedule --------------------------------------------------------
def test_03_eval_schedule(capsys):
    folder = BUGS / "03-eval-schedule"
    code, lines = check_lines(capsys, folder / "ssd_evals_40_45_47.txt")
    assert code == 1 and lines == [
        "the target is reached only at epoch(s) 47, off the ruleset's evaluation schedule (epochs 40, 50, 55, "
        "60, 65, 70, 75, 80); a run may only stop at a scheduled evaluation (rules 0.7.0 table, not checked by "
        "the official checker)"]
    code, out, _ = run(capsys, "check", folder / "resnet_every_epoch.txt", folder / "resnet_every_4_offset_0.txt")
    assert (code, out) == (0, [])


def test_resnet_may_not_switch_offset_to_stop(tmp_path):
    # evaluations at 1, 5, ..., 17 (offset 1), then the target claimed at epoch 20 (offset 0)
    text = RESNET_LOG.read_text().replace('"epoch_num": 21', '"epoch_num": 20')
    judged = verdict.judge(write(tmp_path, text))
    assert [f.text for f in judged.findings] == [
        "the target is reached at epoch 20, but the scheduled evaluation(s) at epoch(s) 4, 8, 12, 16 before it "
        "are missing (schedule: every 4 epochs, the first after at most 4 with offset 4)"]


def test_published_schedules_pass():
    for log in ("Google/results/tpu-v4-16-TF/ssd/result_0.txt",        # every 5 epochs, stops at 50
                "Inspur/results/nf5488_pytorch/ssd/result_1.txt",       # logged as 41 and 51
                "Google/results/tpu-v4-128-TF/resnet/result_0.txt",     # 3.0, 6.0, 10.0, ... 42.0
                "Google/results/tpu-v4-128-TF/minigo/result_0.txt"):    # evaluations from generation 45
        assert verdict.judge(V07 / log).converged, log


# --- 04: a rule whose allowed values depend on another key ------------------------------
def test_04_lars_momentum(capsys):
    folder = BUGS / "04-lars-momentum"
    code, out, _ = run(capsys, "validate", "--ruleset", "0.7.0", folder / "lars_b3264_m095.yaml")
    assert code == 2 and out == [f"{folder}/lars_b3264_m095.yaml: hparams.lars_opt_momentum = 0.95: "
                                 f"fixed at 0.9 when global_batch_size < 32768"]
    code, lines = check_lines(capsys, folder / "lars_b3264_m095.log")
    assert code == 1 and lines == ["hparam lars_opt_momentum = 0.95: fixed at 0.9 when global_batch_size < 32768 "
                                   "(rules 0.7.0 table, not checked by the official checker)"]


@pytest.mark.parametrize("batch, momentum, ok", [(3264, "0.9", True), (32768, "0.95", True),
                                                  (65536, "0.9537", True), (32767, "0.95", False),
                                                  (3264, '"0.9"', True), (3264, "0.90000000001", True)])
def test_lars_momentum_by_batch(tmp_path, batch, momentum, ok):
    text = edit(edit((BUGS / "04-lars-momentum" / "lars_b3264_m095.log").read_text(), "lars_opt_momentum", momentum),
                "global_batch_size", str(batch))
    assert not [f for f in verdict.judge(write(tmp_path, text)).findings if "lars_opt_momentum" in f.text] == (not ok)


# --- 05: a logged value is judged by what it means --------------------------------------
def test_05_integer_as_float(capsys):
    folder = BUGS / "05-integer-as-float"
    code, out, _ = run(capsys, "check", folder / "warmup_factor_32.0.txt", folder / "warmup_factor_32.txt")
    assert (code, out) == (0, [])


@pytest.mark.parametrize("value, ok", [("32.0", True), ('"32"', True), ("0", True), ("32.5", False),
                                       ('"many"', False), ("true", False), ("-1", False)])
def test_integer_spellings(tmp_path, value, ok):
    text = edit((BUGS / "05-integer-as-float" / "warmup_factor_32.txt").read_text(), "opt_learning_rate_warmup_factor", value)
    findings = verdict.judge(write(tmp_path, text)).findings
    table = [f for f in findings if not f.official]          # the official checker: "32" >= 0 fails
    assert (not table) == ok, findings
    assert all("opt_learning_rate_warmup_factor" in f.text for f in table)


@pytest.mark.parametrize("key, value, ok", [
    ("opt_learning_rate_alt_decay_func", '"True"', True), ("opt_learning_rate_alt_decay_func", '"false"', True),
    ("opt_learning_rate_alt_decay_func", "true", True), ("opt_learning_rate_alt_warmup_func", '"t2t"', True),
    ("opt_learning_rate_alt_decay_func", "1.0", False), ("opt_learning_rate_alt_decay_func", '"yes"', False),
    ("opt_learning_rate_decay_steps", "4.0", True), ("opt_learning_rate_decay_steps", '"4"', True),
    ("opt_learning_rate_decay_factor", '"0.5"', True), ("opt_learning_rate_decay_factor", '"0.7"', False),
])
def test_gnmt_spellings(tmp_path, key, value, ok):
    judged = verdict.judge(write(tmp_path, edit(GNMT07.read_text(), key, value)))
    assert judged.converged == ok, judged.findings
    if not ok:
        assert judged.findings[0].text.startswith(f"hparam {key} = ")
        assert judged.findings[0].source == "rules 0.7.0 table, not checked by the official checker"


@pytest.mark.parametrize("value, ok", [('"128, 10000, 20000"', True), ('"[128, 10000, 20000]"', True),
                                       ("[128, 10000, 20000]", True), ('"128,10000"', True),
                                       ('"fast"', False), ("128", False)])
def test_list_spellings(tmp_path, value, ok):
    judged = verdict.judge(write(tmp_path, edit(MINIGO07.read_text(), "lr_boundaries", value)))
    assert judged.converged == ok, judged.findings


# --- off-clock MiniGo (ruleset 0.6.0) as our engine writes it ---------------------------
def minigo_log(passing=3, generations=4, stamp=None, result_iteration=None):
    """A 9x9 MiniGo run of ruleset 0.6.0 in :::MLLOG format: one model saved per generation,
    evaluated off the clock; eval_result names the first that wins >= 50 %."""
    t = 1_600_000_000_000
    lines = [mllog(t, key, value) for key, value in (
        ("submission_org", "x"), ("submission_platform", "cpu"), ("submission_division", "closed"),
        ("submission_status", "onprem"), ("submission_benchmark", "minigo"))]
    lines += [mllog(t, "mlperf_train_preset", "reference", ruleset="0.6.0", target=0.5, small=False),
              mllog(t, "cache_clear", True), mllog(t + 1, "init_start"), mllog(t + 2, "seed", 7),
              mllog(t + 3, "global_batch_size", 8192), mllog(t + 3, "opt_base_learning_rate", [0.32, 0.032, 0.0032]),
              mllog(t + 3, "opt_learning_rate_decay_boundary_steps", [12500, 18750]), mllog(t + 3, "virtual_losses", 8),
              mllog(t + 1000, "init_stop"), mllog(t + 1000, "run_start")]
    clock, paused = t + 1000, 0
    for gen in range(1, generations + 1):
        lines.append(mllog(clock + 1, "epoch_start", epoch_num=gen))
        clock += 60_000
        scored = (clock - (t + 1000) - paused) / 1000
        lines += [mllog(clock, "save_model", {"iteration": gen}, epoch_num=gen, timestamp=scored),
                  mllog(clock + 1, "epoch_stop", epoch_num=gen),
                  mllog(clock + 2, "eval_start", epoch_num=gen, on_clock=False),
                  mllog(clock + 20_000, "eval_accuracy", 0.6 if gen >= passing else 0.3, epoch_num=gen),
                  mllog(clock + 20_001, "eval_stop", epoch_num=gen, on_clock=False)]
        clock += 20_001
        paused += 19_999
        if gen == passing:
            lines.append(mllog(clock, "eval_result", None, iteration=result_iteration or gen,
                               timestamp=stamp if stamp is not None else scored))
            break
    lines.append(mllog(clock + 1, "run_stop", status="success"))
    return "\n".join(lines) + "\n"


def test_off_clock_minigo_is_timed_by_eval_result(tmp_path, capsys):
    for i in range(10):
        write(tmp_path, minigo_log(passing=2 + i % 3), f"result_{i}.txt")
    code, lines = check_lines(capsys, tmp_path / "result_0.txt")
    assert (code, lines) == (0, [])
    result = score.score_folder(tmp_path)
    assert (result.round, result.converged, result.valid) == ("0.6.0", 10, True)
    # generation n's model is saved after n minutes of training; evaluations are paused
    assert verdict.judge(tmp_path / "result_1.txt").minutes == pytest.approx(3.0, abs=1e-3)
    # olympic mean of 2,3,4,2,3,4,2,3,4,2
    assert result.minutes == pytest.approx((2 * 3 + 3 * 3 + 4 * 2) / 8, abs=1e-3)


@pytest.mark.parametrize("kwargs, words", [
    ({"stamp": 500.0}, "later than model 3's save_model"),
    ({"result_iteration": 4, "generations": 5}, "eval_result names model 4, but the first model"),
    ({"stamp": 0.0}, "eval_result: no model reached the target"),
])
def test_off_clock_minigo_findings(tmp_path, kwargs, words):
    judged = verdict.judge(write(tmp_path, minigo_log(**kwargs)))
    assert any(words in f.text for f in judged.findings), judged.findings


def test_published_v06_minigo_is_scored_from_eval_result():
    folder = FIXTURES / "v0.6/NVIDIA/results/dgx1_ngc19.05_tensorflow/minigo"
    result = score.score_folder(folder)
    assert result.valid and result.converged == 10
    times = sorted(verdict.judge(p).minutes for p in folder.glob("result_*.txt"))
    assert result.minutes == pytest.approx(sum(times[1:-1]) / 8)


# --- every line names its source -----------------------------------------------------------
def test_every_finding_names_its_source(tmp_path, capsys):
    bad = edit(edit(SSD07.joinpath("result_0.txt").read_text(), "max_samples", "7"), "eval_accuracy", "0.1")
    code, lines = check_lines(capsys, write(tmp_path, bad))
    assert code == 1 and lines
    assert all(re.search(r"\((official checker: training_0\.7\.0/\w+\.yaml|rules 0\.7\.0 table[,;] [^)]*)\)$", l)
               for l in lines), lines
    assert "hparam max_samples = 7: must be one of [1, 50] (rules 0.7.0 table; the official checker fails it too)" in lines
