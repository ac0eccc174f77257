"""MiniGo (9x9 Go by self-play reinforcement learning): the harness plug-in
(``mlperf_train/benchmark.py``). The unit is the generation: self-play with the best
network, training on the window of golden chunks, gating (spec section 3).

Two protocols, chosen by the ruleset (spec sections 3 and 5):
- 0.5.0: random initial weights; quality = professional-move prediction, on the clock;
- 0.6.0: the bootstrap checkpoint and its golden chunk (artifacts); quality = win rate
  against the target model, evaluated off the clock on each generation's saved model.
"""
from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlperf_train.benchmark import Benchmark, EvalResult, ExampleBatch, Logged, TrainStats
from mlperf_train.errors import UsageError
from mlperf_train.settings import setting
from references.minigo import artifacts as art, evaluation, gtp, mcts, play, selfplay, sgf, train
from references.minigo.features import NUM_PLANES
from references.minigo.model import DualNet

PRO_GAMES_DIR = Path(__file__).resolve().parent / "benchmark_sgf"
PRO_GAMES = ("9x9_pro_YKSH.sgf", "9x9_pro_IYMD.sgf", "9x9_pro_YSIY.sgf", "9x9_pro_IYHN.sgf")
GNUGO_KEY = "mlperf_train_gnugo_win_rate"
V05 = "0.5.0"


@contextlib.contextmanager
def cpu_threads(count: int):
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclasses.dataclass(frozen=True)
class MinigoSettings:
    """Defaults are [R06]'s (ruleset 0.6.0, ``ml_perf/flags/9``); ``reference`` gives
    [R05]'s where it differs. Spec sections in the comments."""

    # model (section 2)
    filters: int = setting(32, closed=True, allowed={"min": 1})
    blocks: int = setting(9, closed=True, allowed={"min": 0})
    value_fc: int = setting(64, closed=True, allowed={"min": 1})
    bn_decay: float = setting(0.95, closed=True, reference={V05: 0.997}, allowed={"min": 0.0, "max": 1.0})
    conv_bias: bool = setting(False, closed=True, reference={V05: True})
    # loss (section 3)
    value_weight: float = setting(0.25, closed=True, reference={V05: 1.0}, allowed={"min": 0.0})
    # self-play (section 3)
    games_per_generation: int = setting(4096, closed=True, reference={V05: 2000}, allowed={"min": 1})
    readouts: int = setting(240, closed=True, reference={V05: 200}, allowed={"min": 1})
    c_puct: float = setting(1.38, closed=True, allowed={"min": 0.0})          # [R05]'s constant
    c_puct_base: float = setting(19652.0, closed=True, reference={V05: 0.0}, allowed={"min": 0.0})  # 0: constant
    value_init_penalty: float = setting(0.2, closed=True, reference={V05: 0.0}, allowed={"min": 0.0})
    dirichlet_alpha: float = setting(0.03 * 361 / 81, closed=True, allowed={"min": 0.0})
    noise_mix: float = setting(0.25, closed=True, allowed={"min": 0.0, "max": 1.0})
    softpick_moves: int = setting(6, closed=True, allowed={"min": 0})
    softpick_power: float = setting(0.98, closed=True, reference={V05: 0.95}, allowed={"min": 0.0})
    resign_threshold: float = setting(-0.99, closed=True, reference={V05: -0.95}, allowed={"min": -1.0, "max": 0.0})
    resign_disabled_fraction: float = setting(0.1, closed=True, reference={V05: 0.05},
                                              allowed={"min": 0.0, "max": 1.0})
    max_moves: int = setting(162, closed=True, reference={V05: 113}, allowed={"min": 1})
    # training window (section 3)
    window_size: int = setting(10, closed=True, reference={V05: 40}, allowed={"min": 1})
    filter_amount: float = setting(0.5, closed=True, reference={V05: 0.05}, allowed={"min": 0.0, "max": 1.0})
    # gating (section 3): 0 games = the newest model always plays the next self-play
    gating_games: int = setting(100, closed=True, allowed={"min": 0})
    gating_threshold: float = setting(0.49, closed=True, reference={V05: 0.55}, allowed={"min": 0.0, "max": 1.0})
    # evaluation (section 5)
    eval_games: int = setting(100, closed=True, allowed={"min": 1})
    eval_readouts: int = setting(240, closed=True, reference={V05: 1000}, allowed={"min": 1})
    eval_rounds: int = setting(2, closed=True, allowed={"min": 1})
    # the GNU Go extra of every evaluation (not a rules quantity): games and GNU Go's level
    gnugo_games: int = setting(20, allowed={"min": 0})
    gnugo_level: int = setting(1, allowed={"min": 0, "max": 10})
    # execution: worker processes per rank (0: in-process), games played at once per
    # worker (one network call evaluates all their leaves), intra-op threads
    selfplay_workers: int = setting(0, allowed={"min": 0})
    parallel_games: int = setting(64, allowed={"min": 1})
    cpu_threads: int = setting(1, allowed={"min": 0})
    # generate_small's artifacts (0.6.0 protocol): the bootstrap from random-network
    # self-play, the target trained on GNU Go games
    bootstrap_gnugo_games: int = setting(0, allowed={"min": 0})     # 0: random-network self-play
    bootstrap_games: int = setting(64, allowed={"min": 1})
    bootstrap_readouts: int = setting(20, allowed={"min": 1})
    bootstrap_steps: int = setting(50, allowed={"min": 0})
    target_gnugo_games: int = setting(50, allowed={"min": 0})
    target_gnugo_level: int = setting(1, allowed={"min": 0, "max": 10})
    target_steps: int = setting(200, allowed={"min": 0})


@dataclasses.dataclass
class MinigoState:
    settings: MinigoSettings
    hparams: Any
    env: Any
    protocol: str                      # "0.5.0" (pro moves) or "0.6.0" (target model)
    model: torch.nn.Module             # the trained network (DDP-wrapped where distributed)
    core: DualNet                      # the same network, unwrapped
    optimizer: torch.optim.Optimizer
    best: dict                         # state dict of the network that plays self-play
    global_step: int
    pool: selfplay.SelfPlayPool
    window: list = dataclasses.field(default_factory=list)     # golden chunks, oldest first
    target: DualNet | None = None
    pro_games: list = dataclasses.field(default_factory=list)
    last: dict = dataclasses.field(default_factory=dict)       # the last generation's counts


def _params(s: MinigoSettings, virtual_losses: int, readouts: int) -> play.PlayParams:
    search = mcts.SearchParams(c_puct=s.c_puct, c_puct_base=s.c_puct_base, value_init_penalty=s.value_init_penalty,
                               virtual_losses=virtual_losses, dirichlet_alpha=s.dirichlet_alpha,
                               noise_mix=s.noise_mix)
    return play.PlayParams(readouts=readouts, search=search, softpick_moves=s.softpick_moves,
                           softpick_power=s.softpick_power, resign_threshold=s.resign_threshold,
                           resign_disabled_fraction=s.resign_disabled_fraction, max_moves=s.max_moves)


def _my_games(num_games: int, env) -> list[int]:
    return list(range(env.rank, num_games, env.world_size))


def _match_share(game_ids: list[int], eval_a, eval_b, params: play.PlayParams, rng) -> int:
    """A's wins in games ``game_ids`` (A is Black in even-numbered games)."""
    black = sum(1 for g in game_ids if g % 2 == 0)
    wins = 0
    if black:
        wins += sum(r.result > 0 for r in play.play_games(black, eval_a, eval_b, params, rng, selfplay=False))
    if len(game_ids) - black:
        wins += sum(r.result < 0 for r in play.play_games(len(game_ids) - black, eval_b, eval_a, params, rng,
                                                            selfplay=False))
    return wins


class MinigoBenchmark(Benchmark):
    name = "minigo"
    metric = "win rate"
    unit = "generation"
    Settings = MinigoSettings
    State = MinigoState

    # --- data and artifacts (untimed) --------------------------------------------------------
    def prepare(self, source, data_dir, settings):
        """MiniGo has no dataset: ``prepare`` makes the 0.6.0 artifacts (bootstrap, its
        golden chunk, target model) into ``data_dir/artifacts``; ``source`` is not read."""
        if settings.target_gnugo_games or settings.bootstrap_gnugo_games:
            gtp.require_gnugo()
        facts = art.make_all(Path(data_dir) / "artifacts", settings, seed=0)
        print(f"minigo: artifacts in {Path(data_dir) / 'artifacts'} {facts}")

    def generate_small(self, data_dir, settings, seed=0):
        if settings.target_gnugo_games or settings.bootstrap_gnugo_games:
            gtp.require_gnugo()
        art.make_all(Path(data_dir) / "artifacts", settings, seed)

    def required_artifacts(self, preset):
        if preset.settings.gnugo_games:
            gtp.require_gnugo()
        if preset.ruleset == V05:
            return {}
        return {art.BOOTSTRAP: "the bootstrap checkpoint (`mlperf-train prepare minigo` makes one)",
                art.BOOTSTRAP_CHUNK: "the bootstrap's golden chunk",
                art.TARGET: "the target model the win rate is measured against"}

    # --- one run -------------------------------------------------------------------------------
    def init(self, preset, env, artifacts):
        s, hp = preset.settings, preset.hparams
        protocol = V05 if preset.ruleset == V05 else "0.6.0"
        kwargs = art.model_kwargs(s)
        step, target, chunks = 0, None, []
        if protocol == V05:
            core = DualNet(**kwargs)
        else:
            core, step = self._load(artifacts.path(art.BOOTSTRAP, "the bootstrap checkpoint"))
            if art.model_kwargs_of(core) != kwargs:
                raise UsageError(f"{artifacts.folder / art.BOOTSTRAP}: its network {art.model_kwargs_of(core)} "
                                 f"is not the settings' {kwargs}")
            chunks = [train.read_chunk(artifacts.path(art.BOOTSTRAP_CHUNK, "the bootstrap's golden chunk"))]
            target, _ = self._load(artifacts.path(art.TARGET, "the target model"))
        optimizer = torch.optim.SGD(core.parameters(), lr=float(hp["opt_base_learning_rate"][0]), momentum=0.9)
        pool = selfplay.SelfPlayPool(s.selfplay_workers)
        pro = [sgf.read_game(PRO_GAMES_DIR / name) for name in PRO_GAMES] if protocol == V05 else []
        return MinigoState(settings=s, hparams=hp, env=env, protocol=protocol, model=env.wrap_model(core),
                           core=core, optimizer=optimizer, best={k: v.clone() for k, v in core.state_dict().items()},
                           global_step=step, pool=pool, window=chunks, target=target, pro_games=pro)

    @staticmethod
    def _load(path):
        try:
            return art.load_model(path)
        except ValueError as error:
            raise UsageError(str(error)) from None

    def open_data(self, state, dataset):
        """No data: MiniGo makes its own games on the clock."""

    def train_epoch(self, state, epoch, progress):
        with cpu_threads(state.settings.cpu_threads):
            return self._generation(state, epoch, progress)

    def _generation(self, state, epoch, progress):
        s, env, hp = state.settings, state.env, state.hparams
        params = _params(s, int(hp["virtual_losses"]), s.readouts)
        mine = len(_my_games(s.games_per_generation, env))
        seed = (env.seed * 1_000_003 + epoch) * 64 + env.rank
        chunk, counts = state.pool.play(art.model_kwargs(s), state.best, params, mine, seed, s.parallel_games)
        gathered = env.all_gather_object((chunk, counts)) if env.is_distributed else [(chunk, counts)]
        state.window = (state.window + [train.concat_chunks([c for c, _ in gathered])])[-s.window_size:]
        state.last = {key: sum(c[key] for _, c in gathered) for key in counts}
        # the same selection on every rank: each takes its slice of every global batch
        rng = np.random.default_rng((env.seed * 1_000_003 + epoch) * 7)
        examples = train.select_examples(state.window, s.filter_amount, rng)
        state.global_step, loss, done = train.train_pass(
            state.model, state.core, state.optimizer, examples, int(hp["global_batch_size"]),
            hp["opt_base_learning_rate"], hp["opt_learning_rate_decay_boundary_steps"], state.global_step,
            s.value_weight, env.rank, env.world_size, progress)
        self._gate(state, epoch)
        return TrainStats(num_samples=done, loss=loss)

    def _gate(self, state, epoch):
        """Promote the new network to play self-play when it wins ``gating_threshold`` of
        ``gating_games`` against the best (spec section 3); without gating, always."""
        s, env = state.settings, state.env
        new = {k: v.detach().clone() for k, v in state.core.state_dict().items()}
        if not s.gating_games:
            state.best = new
            return
        best = DualNet(**art.model_kwargs(s))
        best.load_state_dict(state.best)
        rng = np.random.default_rng((env.seed * 1_000_003 + epoch) * 64 + env.rank + 11)
        params = _params(s, int(state.hparams["virtual_losses"]), s.eval_readouts)
        wins = _match_share(_my_games(s.gating_games, env), play.make_evaluator(state.core, rng),
                            play.make_evaluator(best, rng), params, rng)
        wins = int(env.all_reduce_sum(torch.tensor(float(wins))).item())
        state.last["gating_win_rate"] = wins / s.gating_games
        if wins >= s.gating_threshold * s.gating_games:
            state.best = new

    def train_step(self, state, batch):
        state.core.train()
        state.optimizer.zero_grad(set_to_none=True)
        loss, _, _ = train.loss_terms(state.model, state.core, batch["planes"], batch["pi"], batch["z"],
                                      state.settings.value_weight)
        loss.backward()
        state.optimizer.step()
        return loss.detach()

    def example_batch(self, state, split="train"):
        generator = torch.Generator().manual_seed(0)
        if split == "eval":  # one round of leaves: every game's virtual-loss batch
            n = state.settings.parallel_games * int(state.hparams["virtual_losses"])
            return ExampleBatch((torch.rand(n, NUM_PLANES, 9, 9, generator=generator) < 0.3).float(), n)
        n = len(state.env.shard(int(state.hparams["global_batch_size"])))
        planes = (torch.rand(n, NUM_PLANES, 9, 9, generator=generator) < 0.3).float()
        pi = torch.softmax(torch.randn(n, 82, generator=generator), dim=1)
        z = torch.randint(0, 2, (n,), generator=generator).float() * 2 - 1
        return ExampleBatch({"planes": planes, "pi": pi, "z": z}, n)

    @torch.no_grad()
    def eval_step(self, state, batch):
        state.core.eval()
        return state.core(batch)

    def evaluate(self, state, epoch):
        with cpu_threads(state.settings.cpu_threads):
            return self._evaluate(state, epoch)

    def _evaluate(self, state, epoch):
        s, env = state.settings, state.env
        rng = np.random.default_rng((env.seed * 1_000_003 + epoch) * 64 + env.rank + 23)
        params = _params(s, int(state.hparams["virtual_losses"]), s.eval_readouts)
        evaluate = play.make_evaluator(state.core, rng)
        if state.protocol == V05:
            positions = evaluation.prediction_positions(state.pro_games)
            mine = [positions[i] for i in _my_games(len(positions), env)]
            hits = evaluation.pro_move_hits(state.pro_games, mine, evaluate, params, s.eval_rounds, rng)
            total = env.all_reduce_sum(torch.tensor([float(hits)]))
            quality = {"pro_move_accuracy": float(total[0]) / (len(positions) * s.eval_rounds)}
        else:
            wins = _match_share(_my_games(s.eval_games, env), evaluate, play.make_evaluator(state.target, rng),
                                params, rng)
            quality = {"win_rate": float(env.all_reduce_sum(torch.tensor([float(wins)]))[0]) / s.eval_games}
        extras = {}
        if s.gnugo_games:
            wins = evaluation.gnugo_wins(_my_games(s.gnugo_games, env), evaluate, params, s.gnugo_level,
                                         env.seed * 1000 + epoch, rng)
            rate = float(env.all_reduce_sum(torch.tensor([float(wins)]))[0]) / s.gnugo_games
            extras[GNUGO_KEY] = Logged(rate, {"gnugo_level": s.gnugo_level, "games": s.gnugo_games,
                                              "readouts": s.eval_readouts})
        for key, value in state.last.items():
            extras[f"mlperf_train_selfplay_{key}"] = value
        return EvalResult(quality, extras)

    def save_checkpoint(self, state, path):
        if state.env.is_main:
            art.save_model(Path(path), state.core, art.model_kwargs(state.settings), state.global_step)
        state.env.barrier()

    def close(self, state):
        state.pool.close()

    # --- logged keys (spec section 7) --------------------------------------------------------------
    def logged_hparams(self, preset, env):
        s = preset.settings
        return {"num_readouts": s.readouts, "num_games": s.games_per_generation,
                "value_init_penalty": s.value_init_penalty, "resign_threshold": s.resign_threshold,
                "disable_resign_pct": s.resign_disabled_fraction, "window_size": s.window_size,
                "filter_amount": s.filter_amount, "gating_win_rate": s.gating_threshold,
                "eval_games": s.eval_games, "opt_weight_decay": train.L2_STRENGTH, "opt_name": "sgd",
                "opt_momentum": 0.9}


BENCHMARK = MinigoBenchmark()
