"""The evaluation schedule: a run may only be judged converged at a scheduled evaluation,
without skipping earlier ones; extra evaluations are allowed; one offset per run."""
import pytest

from mlperf_train.rules import benchmark_rules
from mlperf_train.schedule import Schedule

SSD = Schedule(at_epochs=[40, 50, 55, 60, 65, 70, 75, 80])          # v0.7
RESNET = Schedule(every_epochs=4, first_epoch_max=4)                 # v0.7: every 4, first after 1..4


def judge(schedule, evals, reached_from):
    """evals: logged epochs; the target is reached from epoch ``reached_from`` on."""
    return schedule.finding(evals, [e >= reached_from for e in evals])


@pytest.mark.parametrize("evals, reached_from", [
    ([40, 50], 50),                                  # NVIDIA
    (list(range(5, 55, 5)), 50),                     # Google tpu-v4-16: every 5 epochs, extra ones allowed
    ([40, 50, 55, 60, 65], 65),
    ([41, 51], 51),                                  # Fujitsu, Inspur: the epoch that follows
    ([40, 45, 47, 50], 47),                          # reached off schedule at 47, counted at 50
])
def test_ssd_runs_on_schedule(evals, reached_from):
    assert judge(SSD, evals, reached_from) is None


@pytest.mark.parametrize("evals, reached_from, words", [
    ([40, 45, 47], 47, "reached only at epoch(s) 47"),      # issue 12's input
    ([40, 50, 85], 85, "reached only at epoch(s) 85"),      # nothing is scheduled after 80
    ([50], 50, "the first evaluation is at epoch 50"),       # the one at 40 skipped
    ([40, 55], 55, "at epoch(s) 50 before it are missing"),
    ([40, 44, 49], 49, "reached only at epoch(s) 49"),
])
def test_ssd_runs_off_schedule_name_the_epochs(evals, reached_from, words):
    finding = judge(SSD, evals, reached_from)
    assert finding and words in finding and "40, 50, 55, 60, 65, 70, 75, 80" in finding


@pytest.mark.parametrize("evals, reached_from", [
    (list(range(1, 20)), 19),                        # every epoch, stops at 19 (offset 3)
    (list(range(4, 21, 4)), 20),                     # every 4, offset 0
    (list(range(1, 38, 4)), 37),                     # NVIDIA: 1, 5, 9, ...
    ([3, 6, 10, 14, 18, 22, 26, 30, 34, 38, 42], 42),  # Google, 0-based floats, first block mislabelled
    (list(range(2, 61, 2)), 60),                     # SIAT: every 2 epochs
    ([3, 7, 11, 15], 11),                            # reached at 11, the run went on to 15
])
def test_resnet_runs_on_schedule(evals, reached_from):
    assert judge(RESNET, evals, reached_from) is None


@pytest.mark.parametrize("evals, reached_from, words", [
    ([4, 8, 12, 13], 13, "at epoch(s) 5, 9 before it are missing"),   # offset switched to stop at 13
    ([1, 5, 9, 12], 12, "at epoch(s) 4, 8 before it are missing"),
    ([8, 12], 12, "the first evaluation is at epoch 8"),
])
def test_resnet_one_offset_for_the_whole_run(evals, reached_from, words):
    finding = judge(RESNET, evals, reached_from)
    assert finding and words in finding


def test_every_epoch_schedules_every_evaluation():
    gnmt = Schedule(every_epochs=1)
    assert not gnmt.constrains
    assert gnmt.finding([45, 46, 47], [False, False, True]) is None   # Google v0.7 MiniGo starts at 45


def test_nothing_reached_is_not_a_schedule_finding():
    assert SSD.finding([40, 47], [False, False]) is None


def test_evaluations_without_an_epoch():
    assert "no epoch_num" in SSD.finding([None, None], [False, True])
    assert SSD.finding([None, 40, 50], [False, False, True]) is None


def test_fractional_epochs_from_iteration_counts():
    v06 = Schedule.from_cadence(benchmark_rules("ssd", "0.6.0").eval)
    assert v06.finding([33, 44, 50], [False, False, True]) is None          # NVIDIA
    assert v06.finding([33, 43, 49, 54, 59], [False] * 4 + [True]) is None   # Google (118,287 images)
    assert "reached only at epoch(s) 71" in v06.finding([33, 44, 49, 55, 61, 66, 71], [False] * 6 + [True])


def test_a_presets_cadence():
    assert Schedule.from_cadence({"every_epochs": 2}).finding([2, 4, 6], [False, False, True]) is None
    picked = Schedule.from_cadence({"every_epochs": 4, "first_eval_epoch": 2})
    assert picked.finding([2, 6], [False, True]) is None
    assert "reached only" in picked.finding([2, 5], [False, True])
