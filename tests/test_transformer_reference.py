"""Transformer reference: prepare on generated raw text, the length filter, one block and
one evaluation through the engine (log accepted), and the small preset to its target."""
import json

import numpy as np
import pytest
import yaml

from helpers import read_events, run_cli
from mlperf_train import cli, compliance
from mlperf_train.hparams import HPARAMS_DIR
from references.seq2seq.subword import Subtokenizer
from references.transformer import data
from references.transformer.benchmark import BENCHMARK, TransformerSettings
from references.transformer.synthetic import write_raw_corpus

TINY_SETTINGS = {"d_model": 16, "num_heads": 2, "ffn_inner": 32, "num_layers": 1, "vocab_size": 1216,
                 "num_train_shards": 3, "eval_batch_size": 16, "synth_train_pairs": 300,
                 "synth_dev_pairs": 10, "synth_test_pairs": 24}


def test_prepare_reads_the_raw_layout_and_round_trips(tmp_path):
    raw = tmp_path / "raw"
    write_raw_corpus(raw, num_train=90, num_dev=5, num_test=7, seed=3)
    assert (raw / "training" / "europarl-v7.de-en.de").is_file() and (raw / "dev" / "newstest2013.en").is_file()
    settings = TransformerSettings(vocab_size=4096, num_train_shards=4)
    data.prepare(raw, tmp_path / "prepared", settings)
    prepared = tmp_path / "prepared"
    info = json.loads((prepared / data.INFO_FILE).read_text())
    assert info["train_pairs"] == 90 and info["num_train_shards"] == 4
    tokenizer = Subtokenizer.load(prepared / data.VOCAB_FILE)
    english = data.read_lines(raw / "training" / "news-commentary-v12.de-en.en")
    train = data.TrainingSet(prepared, max_length=256, method="discard")
    assert train.num_pairs == 90 and [len(s) for s in train.shards] == [23, 23, 22, 22]
    decoded = {tokenizer.decode(train.src.get(i)[:-1].tolist()) for i in range(90)}
    assert set(english) <= decoded  # every pair is in some shard, ids + EOS
    assert all(train.src.get(i)[-1] == 1 for i in range(90))
    ids, refs = data.load_test_set(prepared, tokenizer)
    assert len(ids) == len(refs) == 7 and refs == data.read_lines(raw / "newstest2014.de")


def test_missing_files_are_named(tmp_path):
    write_raw_corpus(tmp_path, num_train=9, num_dev=2, num_test=2, seed=0)
    (tmp_path / "commoncrawl.de-en.de").unlink()
    with pytest.raises(Exception, match="commoncrawl.de-en.de"):
        data.prepare(tmp_path, tmp_path / "out", TransformerSettings())


def test_max_sequence_length_discard_and_truncate(tmp_path):
    BENCHMARK.generate_small(tmp_path, TransformerSettings(**TINY_SETTINGS), seed=0)
    everything = data.TrainingSet(tmp_path, 1000, "discard")
    longest = np.maximum(everything.src.lengths, everything.tgt.lengths)
    cut = int(np.median(longest))
    discard = data.TrainingSet(tmp_path, cut, "discard")
    truncate = data.TrainingSet(tmp_path, cut, "truncate")
    assert discard.num_pairs == int((longest <= cut).sum()) < truncate.num_pairs == everything.num_pairs
    for train in (discard, truncate):
        batches = train.epoch_batches(seed=1, epoch=1, max_tokens=256, cycle_length=4, min_boundary=8,
                                      boundary_scale=1.1)
        assert sorted(np.concatenate(batches).tolist()) == sorted(np.concatenate(train.shards).tolist())


@pytest.fixture
def tiny_preset(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPERF_TRAIN_CACHE", str(tmp_path / "cache"))
    doc = yaml.safe_load((HPARAMS_DIR / "transformer" / "small.yaml").read_text())
    doc.update(preset="tiny", target=101.0, max_epochs=1, eval={"every_epochs": 1})
    doc["hparams"].update(global_batch_size=512, opt_learning_rate_warmup_steps=10)
    doc["settings"] = TINY_SETTINGS
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_one_block_and_one_evaluation_through_the_engine(tiny_preset, tmp_path):
    assert cli.main(["run", "transformer", "--hparams", str(tiny_preset), "--runs", "1", "--seed", "5",
                     "--output", str(tmp_path / "logs"), "--system", "cpu"]) == 0
    log = tmp_path / "logs" / "cpu" / "transformer" / "result_0.txt"
    # the tiny target is out of reach: the one finding is that the run did not converge
    [finding] = compliance.check_log(str(log))
    assert finding.startswith("no evaluation reached the target") and "the target preset 'tiny' logs" in finding
    by_key = {}
    for event in read_events(log):
        by_key.setdefault(event["key"], []).append(event)
    assert by_key["max_sequence_length"][0]["metadata"]["method"] == "discard"
    assert by_key["opt_adam_epsilon"][0]["value"] == 1e-9
    assert by_key["train_samples"][0]["value"] == 300 and by_key["eval_samples"][0]["value"] == 24
    bleu = by_key["eval_accuracy"][0]["value"]
    assert 0.0 <= bleu <= 1.0  # BLEU / 100 in the v0.7 log
    assert by_key["run_stop"][0]["metadata"]["status"] == "aborted"  # the tiny target is out of reach


@pytest.mark.slow
def test_small_preset_reaches_its_target(tmp_path):
    result = run_cli("run", "transformer", "--runs", "1", "--seed", "1", "--output", tmp_path, "--system", "cpu",
                     timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = tmp_path / "cpu" / "transformer" / "result_0.txt"
    stop = [e for e in read_events(log) if e["key"] == "run_stop"][0]
    assert stop["metadata"]["status"] == "success"
    assert compliance.check_log(str(log)) == []


def test_generate_small_is_deterministic(tmp_path):
    settings = TransformerSettings(**{**TINY_SETTINGS, "synth_train_pairs": 60})
    BENCHMARK.generate_small(tmp_path / "a", settings, seed=4)
    BENCHMARK.generate_small(tmp_path / "b", settings, seed=4)
    names = sorted(p.name for p in (tmp_path / "a").iterdir() if p.is_file())
    assert data.VOCAB_FILE in names and "newstest2014.de" in names
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_parallel_encoding_writes_the_same_shards(tmp_path, monkeypatch):
    write_raw_corpus(tmp_path / "raw", num_train=60, num_dev=4, num_test=4, seed=2)
    settings = TransformerSettings(vocab_size=4096, num_train_shards=3)
    data.prepare(tmp_path / "raw", tmp_path / "serial", settings)
    monkeypatch.setattr(data, "_PARALLEL_ABOVE_LINES", 10)
    monkeypatch.setattr(data, "_CHUNK_LINES", 1)  # blocks of 10 lines: several per corpus
    monkeypatch.setattr(data.os, "cpu_count", lambda: 2)
    data.prepare(tmp_path / "raw", tmp_path / "parallel", settings)
    for shard in range(1, 4):
        name = data.shard_name("train", shard, 3)
        with np.load(tmp_path / "serial" / name) as a, np.load(tmp_path / "parallel" / name) as b:
            assert all(np.array_equal(a[key], b[key]) for key in a.files)


@pytest.mark.parametrize("ruleset", ["0.5.0", "0.6.0", "0.7.0"])
def test_presets_pass_the_whitelists(ruleset, tmp_path):
    from mlperf_train.hparams import check_file
    reference = HPARAMS_DIR / "transformer" / "reference.yaml"
    assert check_file(reference, ruleset, "closed", TransformerSettings)[1] == []
    assert check_file(HPARAMS_DIR / "transformer" / "small.yaml", "0.7.0", "closed", TransformerSettings)[1] == []
    changed = tmp_path / "changed.yaml"
    changed.write_text(reference.read_text().replace("d_model: 1024", "d_model: 512")
                       .replace("opt_adam_epsilon: 1.0e-9", "opt_adam_epsilon: 1.0e-8"))
    rules = {v.key for v in check_file(changed, ruleset, "closed", TransformerSettings)[1]}
    assert "settings.d_model" in rules and ("hparams.opt_adam_epsilon" in rules) == (ruleset != "0.6.0")
