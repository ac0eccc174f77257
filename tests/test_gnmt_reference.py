"""GNMT reference: prepare on generated raw WMT16 files (BPE round trip, filters), the timed
loaders and batching, one block and one evaluation through the engine (log accepted), the
evaluation on two ranks equal to one, the presets, and the small preset to its target."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from helpers import ROOT, read_events, run_cli
from mlperf_train import cli, compliance
from mlperf_train.hparams import HPARAMS_DIR, check_file
from references.gnmt import data, prepare
from references.gnmt.benchmark import BENCHMARK, GNMTSettings
from references.gnmt.metric import Detokenizer, join_bpe
from references.gnmt.synthetic import write_raw_corpus

TINY = yaml.safe_load((HPARAMS_DIR / "gnmt" / "tiny.yaml").read_text())


def test_prepare_reads_the_raw_layout_and_bpe_round_trips(tmp_path):
    raw = tmp_path / "raw"
    write_raw_corpus(raw, num_train=200, num_dev=6, num_test=9, seed=3, max_words=10)
    assert (raw / "training" / "europarl-v7.de-en.de").is_file() and (raw / "dev" / "newstest2014-deen-src.de.sgm").is_file()
    counts = prepare.prepare(raw, tmp_path / "out", merges=150)
    out = tmp_path / "out"
    assert counts["train_pairs"] == 200 and counts["dev_pairs"] == 6 and counts["test_sentences"] == 9
    for name in ("vocab.bpe.150", "train.tok.clean.bpe.150.en", "newstest_dev.tok.clean.bpe.150.de",
                 "newstest2014.tok.bpe.150.en", "newstest2014.de"):
        assert (out / name).is_file(), name
    # BPE round trip: joining the pieces gives the Moses-tokenised text back; detokenising it
    # gives the raw sentence back (the toy text has no characters Moses escapes)
    raw_de = prepare.read_lines(raw / "training" / "europarl-v7.de-en.de")
    bpe_de = prepare.read_lines(out / "train.tok.clean.bpe.150.de")
    assert any("@@ " in line for line in bpe_de)
    detok = Detokenizer()
    assert [detok(join_bpe(line.split())) for line in bpe_de[:len(raw_de)]] == raw_de
    vocab = data.Vocabulary.load(out / "vocab.bpe.150")
    assert vocab.tokens[:4] == ["<pad>", "<unk>", "<s>", "<\\s>"] and len(vocab) == counts["vocab_lines"] + 4
    ids = vocab.encode(bpe_de[0])
    assert ids[0] == data.BOS_ID and ids[-1] == data.EOS_ID and data.UNK_ID not in ids
    assert " ".join(vocab.pieces(ids)) == bpe_de[0]
    # the test set: the German side of the deen files is the raw reference, unfiltered
    assert prepare.read_lines(out / "newstest2014.de") == prepare.read_sgm(raw / "dev" / "newstest2014-deen-src.de.sgm")


def test_clean_and_latin1_filters():
    src = ["a b", "", "x " * 81, "a", "ok ☃", "fine"]
    tgt = ["c", "d", "e", "a b c d e f g h i j", "fine", "ok"]
    kept = prepare.latin1_pairs(*prepare.clean_pairs(src, tgt))
    assert kept == (["a b", "fine"], ["c", "ok"])  # empty, > 80 tokens, ratio > 9, not latin-1: dropped


def test_missing_files_are_named(tmp_path):
    write_raw_corpus(tmp_path, num_train=9, num_dev=2, num_test=2, seed=0)
    (tmp_path / "commoncrawl.de-en.de").unlink()
    with pytest.raises(Exception, match="commoncrawl.de-en.de"):
        prepare.prepare(tmp_path, tmp_path / "out", 50)


def test_buckets_and_epoch_batches():
    src, tgt = np.array([3, 12, 25, 49, 50, 9]), np.array([4, 30, 8, 10, 2, 11])
    assert data.bucket_ids(src, tgt, 50, 5).tolist() == [0, 3, 2, 4, 4, 1]
    buckets = np.repeat(np.arange(5), [7, 9, 4, 2, 6])
    batches = data.epoch_batches(buckets, 5, 3, seed=1)
    assert batches.shape == (2 + 3 + 1 + 0 + 2, 3)
    assert all(len(set(buckets[b])) == 1 for b in batches)  # a batch never mixes buckets
    assert not np.array_equal(batches, data.epoch_batches(buckets, 5, 3, seed=2))


def tiny_preset(tmp_path, **changes):
    doc = {**TINY, **changes}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_one_block_and_one_evaluation_through_the_engine(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPERF_TRAIN_CACHE", str(tmp_path / "cache"))
    assert cli.main(["run", "gnmt", "--hparams", str(tiny_preset(tmp_path, target=101.0)), "--runs", "1",
                     "--seed", "5", "--output", str(tmp_path / "logs"), "--system", "cpu"]) == 0
    log = tmp_path / "logs" / "cpu" / "gnmt" / "result_0.txt"
    [finding] = compliance.check_log(str(log))  # the tiny target is out of reach: the one finding
    assert finding.startswith("no evaluation reached the target") and "the target preset 'tiny' logs" in finding
    official = subprocess.run([sys.executable, "-m", "mlperf_logging.compliance_checker", "--usage", "training",
                               "--ruleset", "0.7.0", str(log)], capture_output=True, text=True, cwd=tmp_path)
    failed = [line for line in official.stderr.splitlines() + official.stdout.splitlines() if "Failed" in line]
    assert failed == ["WARNING -  Failed checks for eval_accuracy : v['value'] >= 0.240 and v['value'] < 1"] or \
        all("eval_accuracy" in line for line in failed), official.stderr[-2000:]
    events = read_events(log)
    by_key = {e["key"]: e for e in events}
    assert by_key["max_sequence_length"]["metadata"]["method"] == "discard"
    assert by_key["opt_learning_rate_alt_warmup_func"]["value"] is True
    assert by_key["preproc_vocab_size"]["value"] > 4 and by_key["eval_samples"]["value"] == 24
    assert by_key["train_samples"]["value"] % TINY["hparams"]["global_batch_size"] == 0
    assert 0.0 <= by_key["eval_accuracy"]["value"] <= 1.0 and by_key["eval_loss"]["value"] > 0
    times = [e["time_ms"] for e in events]
    assert times == sorted(times)


@pytest.fixture(scope="module")
def translating_weights(tmp_path_factory):
    """(data folder, preset file, weights) of a model that translates: the tiny preset's data
    and topology at hidden size 64 without dropout, trained deterministically (full batch, 80
    updates) on the 24 newstest2014 pairs themselves, which it learns nearly by heart (BLEU
    far above 0). Made once per test module, about 5 s."""
    from mlperf_train.distributed import RunEnv
    from mlperf_train.hparams import load_preset
    root = tmp_path_factory.mktemp("gnmt_translating")
    doc = {**TINY, "settings": {**TINY["settings"], "hidden_size": 64, "dropout": 0.0}}
    preset_path = root / "tiny64.yaml"
    preset_path.write_text(yaml.safe_dump(doc))
    preset = load_preset(preset_path, None, "closed", GNMTSettings)
    settings = preset.settings
    BENCHMARK.generate_small(root / "data", settings, seed=0)
    env = RunEnv()
    env.seed_everything(0)
    state = BENCHMARK.init(preset, env, None)
    vocab = data.Vocabulary.load(root / "data" / prepare.vocab_file(settings.bpe_merges))
    pairs = data.ParallelSet(root / "data" / prepare.test_source_file(settings.bpe_merges),
                             root / "data" / f"newstest2014.tok.bpe.{settings.bpe_merges}.de", vocab, 0, 1000)
    # a constant learning rate after the warmup: the tiny preset's decay would stop learning
    state.hp = {**state.hp, "opt_base_learning_rate": 0.02, "opt_learning_rate_remain_steps": None}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(80):
            BENCHMARK.train_step(state, BENCHMARK.batch_of(pairs, np.arange(len(pairs))))
    finally:
        torch.set_num_threads(threads)
    torch.save(state.raw_model.state_dict(), root / "weights.pt")
    return root / "data", preset_path, root / "weights.pt"


def test_evaluation_on_two_ranks_equals_one(tmp_path, translating_weights):
    from gnmt_eval_worker import evaluate
    from mlperf_train.distributed import RunEnv
    data_dir, preset_path, weights = translating_weights
    one = evaluate(str(data_dir), str(weights), RunEnv(), preset_path)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--rdzv_backend=c10d",
               "--rdzv_endpoint=localhost:0", str(ROOT / "tests" / "gnmt_eval_worker.py"),
               str(data_dir), str(weights), str(tmp_path / "two.json"), str(preset_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    two = json.loads((tmp_path / "two.json").read_text())
    assert two["my_test"] == 12 and one["my_test"] == 24
    assert one["bleu"] > 30.0, one  # weights that translate, so the statistics below are not all zero
    assert two["stats"] == one["stats"]  # summed BLEU statistics (n-gram matches and totals, lengths): exact
    assert two["bleu"] == one["bleu"] and abs(two["eval_loss"] - one["eval_loss"]) < 1e-5


@pytest.mark.parametrize("ruleset", ["0.6.0", "0.7.0"])
def test_presets_pass_the_whitelists(ruleset, tmp_path):
    reference = HPARAMS_DIR / "gnmt" / "reference.yaml"
    assert check_file(reference, ruleset, "closed", GNMTSettings)[1] == []
    assert check_file(HPARAMS_DIR / "gnmt" / "0.5.0" / "reference.yaml", None, "closed", GNMTSettings)[1] == []
    assert check_file(HPARAMS_DIR / "gnmt" / "small.yaml", "0.7.0", "closed", GNMTSettings)[1] == []
    changed = tmp_path / "changed.yaml"
    changed.write_text(reference.read_text().replace("hidden_size: 1024", "hidden_size: 512")
                       .replace("opt_learning_rate_decay_steps: 4", "opt_learning_rate_decay_steps: 3"))
    rules = {v.key for v in check_file(changed, ruleset, "closed", GNMTSettings)[1]}
    assert "settings.hidden_size" in rules and ("hparams.opt_learning_rate_decay_steps" in rules) == (ruleset == "0.7.0")


@pytest.mark.slow
def test_small_preset_reaches_its_target(tmp_path):
    # seed 5: one of the 4 of 5 calibrated seeds that reach the target within 5 minutes
    # (README; seed 1 is the slow one)
    result = run_cli("run", "gnmt", "--runs", "1", "--seed", "5", "--output", tmp_path, "--system", "cpu",
                     timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = tmp_path / "cpu" / "gnmt" / "result_0.txt"
    stop = [e for e in read_events(log) if e["key"] == "run_stop"][0]
    assert stop["metadata"]["status"] == "success"
    assert compliance.check_log(str(log)) == []
