"""Monte Carlo tree search with virtual losses (spec section 3), as in the reference's
``mcts.py``: child statistics live in numpy arrays on the parent, so choosing a child is a
few vector operations over the 82 moves.

- action score = Q * to_play + U - 1000 * illegal, with Q = W / (1 + N) (Black's view)
  and U = c_puct * sqrt(max(1, N_parent - 1)) * P / (1 + N);
- c_puct: 1.38 constant ([R05]) or 2 * (ln((1 + N + 19652) / 19652) + 1.25) ([R06]);
- a new node's children start at W = its value minus ``value_init_penalty`` for the side
  to move (0 in [R05], 0.2 in [R06]), clamped to [-1, 1], which Q then averages in like a prior;
- a virtual loss (W += to_play of the leaf, a loss for the player who chose it) on every
  node of a path in flight, so one batch of ``virtual_losses`` leaves spreads out;
- root Dirichlet noise (alpha 0.03 * 361 / 81, mix 0.25);
- after a pass, the double pass is looked at first (the reference's guard against losing
  by passing too early).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from references.minigo.go import NUM_MOVES, PASS, Position

#: evaluator(list of positions) -> (priors (B, 82) float32, values (B,) float32 from Black's view)
Evaluator = Callable[[list], tuple]


class SearchParams:
    """The search's constants, from the settings."""

    def __init__(self, c_puct: float = 1.38, c_puct_base: float = 0.0, c_puct_init: float = 1.25,
                 value_init_penalty: float = 0.0, virtual_losses: int = 8, dirichlet_alpha: float = 0.03 * 361 / 81,
                 noise_mix: float = 0.25):
        self.c_puct, self.c_puct_base, self.c_puct_init = c_puct, c_puct_base, c_puct_init
        self.value_init_penalty, self.virtual_losses = value_init_penalty, virtual_losses
        self.dirichlet_alpha, self.noise_mix = dirichlet_alpha, noise_mix

    def scale(self, n: float) -> float:
        """c_puct at a node visited ``n`` times: constant ([R05]) or growing with n ([R06])."""
        if self.c_puct_base > 0:
            return 2.0 * (math.log((1.0 + n + self.c_puct_base) / self.c_puct_base) + self.c_puct_init)
        return self.c_puct


class _Root:
    """The statistics holder above a root (the root's own N and W)."""

    __slots__ = ("child_N", "child_W")

    def __init__(self):
        self.child_N = np.zeros(1, dtype=np.float32)
        self.child_W = np.zeros(1, dtype=np.float32)


class Node:
    """A position in the tree; its own N and W are stored in its parent's arrays."""

    __slots__ = ("position", "parent", "move", "child_N", "child_W", "prior", "illegal", "penalty", "children",
                 "expanded", "losses")

    def __init__(self, position: Position, parent=None, move: int = 0):
        self.position, self.parent, self.move = position, parent or _Root(), move if parent else 0
        self.child_N = np.zeros(NUM_MOVES, dtype=np.float32)
        self.child_W = np.zeros(NUM_MOVES, dtype=np.float32)
        self.prior = np.zeros(NUM_MOVES, dtype=np.float32)
        self.illegal = self.penalty = None
        self.children: dict[int, Node] = {}
        self.expanded = False
        self.losses = 0

    @property
    def N(self) -> float:
        return float(self.parent.child_N[self.move])

    @property
    def W(self) -> float:
        return float(self.parent.child_W[self.move])

    @property
    def Q(self) -> float:
        """Mean value from Black's view."""
        return self.W / (1.0 + self.N)

    def child(self, move: int) -> "Node":
        node = self.children.get(move)
        if node is None:
            node = self.children[move] = Node(self.position.play(move), self, move)
        return node

    def select_move(self, params: SearchParams) -> int:
        # the module docstring's action score, with in-place steps: this is the search's
        # innermost loop, and each avoided temporary is a measurable share of it
        n = self.N
        visits = 1.0 + self.child_N
        score = self.child_W / visits
        score *= self.position.to_play
        u = params.scale(n) * math.sqrt(max(1.0, n - 1.0)) * self.prior
        u /= visits
        score += u
        score -= self.penalty
        return int(score.argmax())

    def select_leaf(self, params: SearchParams) -> "Node":
        node = self
        while node.expanded and not node.position.is_game_over():
            if node.position.passes == 1 and node.child_N[PASS] == 0:
                node = node.child(PASS)
                continue
            node = node.child(node.select_move(params))
        return node

    def add_virtual_loss(self, root: "Node") -> None:
        node = self
        while True:
            node.losses += 1
            node.parent.child_W[node.move] += node.position.to_play
            if node is root:
                return
            node = node.parent

    def revert_virtual_loss(self, root: "Node") -> None:
        node = self
        while True:
            node.losses -= 1
            node.parent.child_W[node.move] -= node.position.to_play
            if node is root:
                return
            node = node.parent

    def expand(self, prior: np.ndarray, value: float, params: SearchParams) -> None:
        if self.expanded:  # reached twice in one batch: the first result stands
            return
        self.expanded = True
        legal = self.position.legal_mask()
        self.illegal = (~legal).astype(np.float32)
        self.penalty = 1000.0 * self.illegal
        p = prior * legal
        total = p.sum()
        self.prior = (p / total if total > 0 else legal / legal.sum()).astype(np.float32)
        # [R06] clamps the penalised value to [-1, 1]: an unvisited move is never worse than a sure loss
        self.child_W[:] = min(1.0, max(-1.0, value - self.position.to_play * params.value_init_penalty))

    def backup(self, value: float, root: "Node") -> None:
        node = self
        while True:
            node.parent.child_N[node.move] += 1
            node.parent.child_W[node.move] += value
            if node is root:
                return
            node = node.parent

    def inject_noise(self, rng: np.random.Generator, params: SearchParams) -> None:
        legal = self.illegal == 0
        noise = np.zeros(NUM_MOVES, dtype=np.float32)
        noise[legal] = rng.dirichlet([params.dirichlet_alpha] * int(legal.sum()))
        self.prior = (1 - params.noise_mix) * self.prior + params.noise_mix * noise


def terminal_value(position: Position) -> float:
    return float(position.result())


def search(roots: list, readouts: list[int], evaluate: Evaluator, params: SearchParams,
           noise: list[bool], rng: np.random.Generator) -> None:
    """Add ``readouts[i]`` visits to ``roots[i]`` for all trees at once: each round takes up
    to ``virtual_losses`` leaves per tree (virtual losses keep them apart) and evaluates all
    trees' leaves in one call. Roots are expanded first; ``noise[i]`` mixes Dirichlet noise
    into root i's priors."""
    fresh = [r for r in roots if not r.expanded and not r.position.is_game_over()]
    if fresh:
        priors, values = evaluate([r.position for r in fresh])
        for r, p, v in zip(fresh, priors, values):
            r.expand(p, float(v), params)
    for r, wants in zip(roots, noise):
        if wants:
            r.inject_noise(rng, params)
    goals = [r.N + k for r, k in zip(roots, readouts)]
    while True:
        leaves, owners = [], []
        active = False
        for root, goal in zip(roots, goals):
            if root.N >= goal or root.position.is_game_over():
                continue
            active = True
            batch = []
            for _ in range(params.virtual_losses):
                if root.N + len(batch) >= goal:
                    break
                leaf = root.select_leaf(params)
                if leaf.position.is_game_over():
                    leaf.backup(terminal_value(leaf.position), root)
                    continue
                if leaf.losses:     # already in flight in this batch
                    break
                leaf.add_virtual_loss(root)
                batch.append(leaf)
            leaves += batch
            owners += [root] * len(batch)
        if not active:
            return
        if not leaves:
            continue
        priors, values = evaluate([leaf.position for leaf in leaves])
        for leaf, root, p, v in zip(leaves, owners, priors, values):
            leaf.revert_virtual_loss(root)
            leaf.expand(p, float(v), params)
            leaf.backup(float(v), root)
