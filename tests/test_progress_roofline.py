"""Progress bars only for a person (rank 0, a terminal), and the roofline's file and peaks."""
import io
import json

from mlperf_train import progress, roofline
from mlperf_train.benchmark import TrainStats, no_progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_no_bars_off_a_terminal_or_off_rank_0(monkeypatch):
    monkeypatch.setattr("sys.stdout", io.StringIO())                 # piped: no bars anywhere
    assert not progress.bars_wanted(Terminal(), is_main=True)
    assert ConsoleProgressFor(Terminal()).epoch_started(1, 3) is no_progress
    monkeypatch.setattr("sys.stdout", Terminal())
    assert progress.bars_wanted(Terminal(), is_main=True)
    assert not progress.bars_wanted(Terminal(), is_main=False)
    monkeypatch.setenv("RANK", "1")
    assert not progress.bars_wanted(Terminal())
    assert list(progress.track(range(3), total=3)) == [0, 1, 2]


def ConsoleProgressFor(stream, enabled=True):
    return progress.ConsoleProgress("HR@10", "epoch", enabled=enabled, label="run 0", stream=stream)


def test_a_bar_on_a_terminal_shows_samples_and_loss_and_leaves_the_unit_line(monkeypatch):
    monkeypatch.setattr("sys.stdout", Terminal())
    monkeypatch.setattr(progress, "REDRAW_SECONDS", 0)
    monkeypatch.setattr(progress, "LOSS_READ_SECONDS", 0)
    stream = Terminal()
    display = ConsoleProgressFor(stream)
    callback = display.epoch_started(1, 3)
    assert callback is not no_progress
    for done in (100, 200, 300):
        callback(done, 300, loss=0.5)
    display.on_epoch(1, 3, TrainStats(num_samples=300, loss=0.25), seconds=2.0)
    shown = stream.getvalue()
    assert "run 0 epoch 1/3" in shown and "loss=0.5000" in shown and "sample" in shown
    assert shown.rstrip().endswith("run 0 epoch 1/3: 2.0 s, 150 samples/s/rank, loss 0.2500")
    # rank != 0: nothing at all
    quiet = Terminal()
    other = ConsoleProgressFor(quiet, enabled=False)
    other.epoch_started(1, 3)(10, 300)
    other.on_epoch(1, 3, TrainStats(num_samples=300), seconds=1.0)
    assert quiet.getvalue() == ""


def test_roofline_writes_beside_the_logs(tmp_path, monkeypatch):
    monkeypatch.setattr(roofline, "SHAPES", {"gemm": [("ncf", "tiny", (64, 32, 32))],
                                             "conv": [("resnet", "tiny", (2, 8, 8, 8, 8, 3, 1))]})
    monkeypatch.setattr(roofline, "MIN_SECONDS", 0.001)
    monkeypatch.setattr(roofline, "measure_bandwidth", lambda device: 1.0e9)

    class Args:
        output, system, device = tmp_path, "1xtest", "cpu"
    assert roofline.main(Args) == 0
    data = json.loads((tmp_path / "1xtest" / roofline.ROOFLINE_FILE).read_text())
    assert set(data["peak_flops"]) == {"gemm", "conv"} and set(data["peak_flops"]["gemm"]) == {"fp32", "bf16"}
    assert data["system"] == "1xtest" and data["device_type"] == "cpu"
    gemm = [op for op in data["ops"] if op["class"] == "gemm" and op["precision"] == "fp32"][0]
    assert gemm["shape"] == [64, 32, 32] and gemm["flops"] == data["peak_flops"]["gemm"]["fp32"] > 0
    # CUDA peaks are one GPU's (x ranks); CPU ranks share one device
    assert roofline.peak(data, "gemm", "fp32", world_size=2) == data["peak_flops"]["gemm"]["fp32"]
    assert roofline.peak({**data, "device_type": "cuda"}, "gemm", "fp32", 8) == 8 * data["peak_flops"]["gemm"]["fp32"]
    assert roofline.peak(data, "gemm", "fp8") is None and roofline.peak(None, "gemm", "fp32") is None


def test_conv_and_gemm_flops_by_hand():
    assert roofline.gemm_flops(2, 3, 4) == 48
    assert roofline.conv_flops(1, 2, 4, 4, 3, 3, 1) == 2 * 16 * 3 * 2 * 9
    assert roofline.conv_flops(1, 2, 5, 5, 3, 1, 2) == 2 * 9 * 3 * 2
    assert roofline._fitted((1 << 20, 1024, 1024), roofline.gemm_flops, __import__("torch").device("cpu"))[0] == 512
