"""MiniGo's search, symmetries and records: MCTS finds the one winning move, the 8
symmetries round-trip, SGF through sgfmill round-trips, self-play resigns and records."""
import numpy as np
import pytest
import torch

from references.minigo import features, go, mcts, play, sgf, train
from references.minigo.go import BLACK, PASS, WHITE, from_stones, point
from references.minigo.model import DualNet


def one_winning_move():
    """Black to play; White's column-5 chain has one liberty, (8, 5). Taking it wins for
    Black (B+10.5); every other move leaves White ahead (W+6.5 as the board is, W+5.5 after
    a Black stone in the neutral column 3; White has no empty territory to invade)."""
    black = [point(r, 4) for r in range(9)] + [point(r, 6) for r in range(9)]
    white = [point(r, c) for r in range(9) for c in range(3)] + [point(r, 5) for r in range(8)]
    # the move cap ends the game after Black's move, so every child is scored exactly
    return go.Position(from_stones(black, white, BLACK).board, BLACK, max_moves=1), point(8, 5)


def score_evaluator(positions):
    """Uniform priors and value 0: the search must find the move from the game's results."""
    priors = np.full((len(positions), go.NUM_MOVES), 1.0 / go.NUM_MOVES, dtype=np.float32)
    values = np.zeros(len(positions), dtype=np.float32)
    return priors, values


@pytest.mark.parametrize("r06", [False, True])
def test_search_puts_most_visits_on_the_one_winning_move(r06):
    position, winning = one_winning_move()
    assert position.area_score() < 0 and position.play(winning).area_score() > 0
    params = mcts.SearchParams(c_puct_base=19652.0 if r06 else 0.0, value_init_penalty=0.2 if r06 else 0.0)
    root = mcts.Node(position)
    mcts.search([root], [400], score_evaluator, params, [False], np.random.default_rng(0))
    assert root.N >= 400
    assert int(np.argmax(root.child_N)) == winning
    assert root.child_N[winning] > 0.5 * root.child_N.sum()
    assert root.child_N[root.illegal > 0].sum() == 0


def test_virtual_losses_spread_one_batch_and_are_all_reverted():
    root = mcts.Node(go.Position())
    params = mcts.SearchParams(virtual_losses=8)
    seen = []

    def evaluator(positions):
        seen.append(len(positions))
        return score_evaluator(positions)
    mcts.search([root], [64], evaluator, params, [True], np.random.default_rng(1))
    assert max(seen) == 8                          # 8 distinct leaves per network call
    assert root.N == 64

    def losses(node):
        return node.losses + sum(losses(c) for c in node.children.values())
    assert losses(root) == 0
    # W holds only backed-up values: |W| <= N everywhere
    assert np.all(np.abs(root.child_W) <= root.child_N + 1.0)


def test_root_noise_changes_the_priors_of_legal_moves_only():
    root = mcts.Node(from_stones([point(0, 1), point(1, 0)], [], WHITE))
    mcts.search([root], [1], score_evaluator, mcts.SearchParams(), [True], np.random.default_rng(2))
    assert root.prior[point(0, 0)] == 0 and root.prior[point(0, 1)] == 0     # suicide, occupied
    assert abs(root.prior.sum() - 1) < 1e-5 and root.prior.std() > 0


@pytest.mark.parametrize("symmetry", range(8))
def test_symmetries_round_trip_and_move_planes_and_policy_alike(symmetry):
    rng = np.random.default_rng(symmetry)
    planes = rng.random((2, features.NUM_PLANES, 9, 9)).astype(np.float32)
    policy = rng.random((2, 82)).astype(np.float32)
    assert np.array_equal(features.invert_policy(features.apply_to_policy(policy, symmetry), symmetry), policy)
    moved = features.apply_to_planes(planes, symmetry)
    as_policy = features.apply_to_policy(np.concatenate([planes[:, 0].reshape(2, 81), policy[:, 81:]], 1), symmetry)
    assert np.array_equal(moved[:, 0].reshape(2, 81), as_policy[:, :81])
    assert len({tuple(p) for p in features.PERMUTATIONS}) == 8


def test_input_planes_follow_the_side_to_move():
    position = go.from_moves([point(4, 4), point(3, 3), point(2, 2)])   # White to move
    x = features.planes(position)
    assert x.shape == (17, 9, 9) and x[16].sum() == 0                     # White to move: plane 16 is 0
    assert x[0, 3, 3] == 1 and x[1, 4, 4] == 1 and x[1, 2, 2] == 1        # own, then opponent stones
    assert x[3].sum() == 1 and x[2].sum() == 1                            # one move back: 1 black, 1 white


def test_sgf_round_trip(tmp_path):
    moves = [point(2, 2), point(6, 6), PASS, point(0, 8), point(8, 0), PASS, PASS]
    sgf.write_game(tmp_path / "g.sgf", moves, result=-1, black="a", white="b")
    assert sgf.read_game(tmp_path / "g.sgf") == moves
    text = (tmp_path / "g.sgf").read_text()
    assert "SZ[9]" in text and "KM[7.5]" in text and "RU[Chinese]" in text and "RE[W+]" in text
    assert ";B[cc]" in text          # SGF rows count from the top, as our points do


def test_selfplay_records_examples_and_resigns_when_lost():
    torch.manual_seed(0)
    model = DualNet(4, 1, 8)
    rng = np.random.default_rng(0)
    evaluate = play.make_evaluator(model, rng)
    params = play.PlayParams(readouts=4, search=mcts.SearchParams(), max_moves=30, resign_disabled_fraction=0.0)
    records = play.play_games(3, evaluate, evaluate, params, rng, selfplay=True)
    chunk = train.records_to_chunk(records)
    assert len(chunk["z"]) == sum(len(r.moves) for r in records)
    assert np.allclose(chunk["pi"].sum(1), 1.0, atol=1e-5)

    def losing_for_black(positions):             # the value net says Black is lost everywhere
        priors, _ = score_evaluator(positions)
        return priors, -np.ones(len(positions), dtype=np.float32)
    params = play.PlayParams(readouts=8, search=mcts.SearchParams(), resign_threshold=-0.5,
                             resign_disabled_fraction=0.0)
    records = play.play_games(2, losing_for_black, losing_for_black, params, rng, selfplay=True)
    assert all(r.resigned and r.result == WHITE and len(r.moves) == 0 for r in records)


def test_softpick_never_draws_a_pass_but_pi_keeps_its_visits():
    """Both references exclude pass from the soft-pick ([R05] ``cdf /= cdf[-2]``, [R06]
    ``PickMove``): a pass with most of the visits is still not drawn early in the game; it is
    played only when it holds every visit. pi keeps the pass's share (the training target)."""
    root = mcts.Node(go.from_moves([point(4, 4)]))
    root.child_N[PASS], root.child_N[point(0, 0)] = 30.0, 1.0
    rng = np.random.default_rng(0)
    picks = {play._pick(root, True, 0.98, rng)[0] for _ in range(200)}
    assert picks == {point(0, 0)}
    _, pi = play._pick(root, True, 0.98, rng)
    assert pi[PASS] > 0.9 and abs(pi.sum() - 1) < 1e-5
    root.child_N[point(0, 0)] = 0.0
    assert play._pick(root, True, 0.98, rng)[0] == PASS
    root.child_N[point(0, 0)] = 1.0
    assert play._pick(root, False, 0.98, rng)[0] == PASS        # after the soft-pick moves: argmax


@pytest.mark.parametrize("to_play, value, expected", [(WHITE, 0.95, 1.0), (BLACK, -0.9, -1.0), (BLACK, 0.5, 0.3)])
def test_new_children_start_at_the_penalised_value_clamped_to_a_sure_result(to_play, value, expected):
    """[R06]: children start at the node's value minus value_init_penalty for the side to
    move, clamped to [-1, 1], so an unvisited move never looks worse than a sure loss (a
    pass into the opponent's winning double pass)."""
    node = mcts.Node(from_stones([point(4, 4)], [point(3, 3)], to_play))
    node.expand(np.full(82, 1 / 82, np.float32), value, mcts.SearchParams(value_init_penalty=0.2))
    assert np.allclose(node.child_W, expected)


def test_value_targets_are_blacks_result_for_both_sides_to_move():
    """z is the game's result from Black's view for every position, whoever is to move, and
    the colour plane says who is: the value head's sign convention (spec section 3)."""
    moves = [point(4, 4), point(3, 3), point(2, 2), PASS]
    for result in (BLACK, WHITE):
        record = play.GameRecord(moves, result, False)
        position = go.Position()
        for move in moves:
            record.planes.append(features.planes(position).astype(np.uint8))
            record.pis.append(np.eye(82, dtype=np.float32)[move])
            position = position.play(move)
        chunk = train.records_to_chunk([record])
        assert np.all(chunk["z"] == result)
        assert chunk["planes"][:, 16].reshape(4, -1).max(1).tolist() == [1, 0, 1, 0]
        assert chunk["pi"][3, PASS] == 1


def test_symmetric_examples_keep_the_pass_index():
    rng = np.random.default_rng(3)
    chunk = {"planes": np.zeros((16, features.NUM_PLANES, 9, 9), np.uint8),
             "pi": np.tile(np.eye(82, dtype=np.float32)[[PASS]], (16, 1)), "z": np.ones(16, np.float32)}
    chunk["planes"][:, 0, 0, 1] = 1
    chunk["pi"][:, point(0, 1)] = 1.0
    examples = train.select_examples([chunk], 1.0, rng)
    assert np.all(examples["pi"][:, PASS] == 1)
    moved = examples["planes"][:, 0].reshape(16, 81)
    assert np.array_equal(moved, examples["pi"][:, :81])        # the stone and pi's point moved alike
    assert len({int(np.argmax(m)) for m in moved}) > 1
