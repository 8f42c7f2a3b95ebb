"""PPD's sparse trees, built offline from measured prompt-token accuracies (tools/ppd).

acc[d][r] (d = 0..k-1 for prompt tokens 1..k, r < K) is the probability that the model's token at
offset d+1 is exactly rank r of prompt token d+1's guesses. A tree for state s (the accepted node of
the previous step carried s prompt tokens, so guesses exist for offsets 1..s):

  * the root (depth 0) is the step's bonus token, always accepted;
  * a node at depth d (1..s) is rank r_d of prompt token d's top-K guesses; siblings have distinct
    ranks; p(node) = prod over its path of acc[d-1][r_d] (guesses treated as independent);
  * every node, the root included, carries n_prompt in 0..k prompt tokens, i.e. n_prompt * m rows
    (m = ensemble); rows(tree) = sum over nodes of 1 + n_prompt * m must stay within the budget S;
  * q(node) = P(node is the last accepted node) = p(node) - sum of p(its children in the tree);
    the next step runs in state n_prompt(last accepted node);
  * expected accepted draft tokens of a step: E_acc(tree) = sum over non-root nodes of p(node).

Build for one budget S (the paper's offline greedy pruning, with the Markov chain over states):
  1. For each state s and node count N, the tree is the top-N paths of depth <= s by p (found
     best-first, so a parent always precedes its children; ties by depth, then ranks).
  2. Every node starts with k prompt tokens; while rows > S, the node whose decrement costs least,
     q(node) * (E[c] - E[c-1]) with c its current n_prompt, loses one (ties: the later node).
  3. The chain's transition row of state s is P[s][c] = sum of q over nodes with n_prompt c. Its
     long-run distribution pi is taken from the start state k (a prefill attaches k prompt tokens),
     as the limit of the lazy chain ((I + P) / 2)^n; the steady value of a set of trees is
     sum_s pi_s * E_acc(tree_s), the expected accepted draft tokens per step.
  Two ways of valuing a state, E[c], are run, and the one whose trees have the higher steady value
  is kept (for the same value, the second):
  a. one step (the paper's): E[c] = E_acc of state c's tree (E[0] = 0). N is chosen per state by
     coordinate ascent on the steady value (each state's N in turn, the others fixed, until nothing
     changes; from two starts: the previous round's choice and each state's own best E_acc); E is
     replaced by the chosen trees' E_acc and the rounds repeat to a fixed point (at most max_iter;
     the best round is kept).
  b. policy iteration: E[c] = V[c], the discounted (gamma = 0.98) accepted tokens of all the steps
     from state c on, V = (I - gamma P)^-1 E_acc; each state's N maximises
     E_acc(tree) + gamma * sum_nodes q(node) V[n_prompt(node)], then V is recomputed, until the
     choice repeats. The one-step value ignores that a state's tree decides the next states, so it
     happily strips prompt tokens towards a state whose own tree is poor or never visited; on
     realistic tables (b) gives 2-10 % more accepted tokens per step at budgets 20-128 (e.g. 0.93
     against 0.83 at S = 20 for acc[0] = 0.5, 0.12, ..., acc[2] = 0.2, 0.08, ...).
  A budget never does worse than a smaller one: when S's result is below S-1's, S-1's trees are
  kept (they fit S too).
State 0's tree is the root alone, with as many prompt tokens as fit.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Tree:
    budget: int
    state: int
    parent: list = field(default_factory=list)    # tree-local index, -1 for the root
    rank: list = field(default_factory=list)      # -1 for the root
    n_prompt: list = field(default_factory=list)
    expected_accept: float = 0.0                  # E_acc of a step in this state
    steady_accept: float = 0.0                    # steady state of the budget (same for every state)

    def rows(self, ensemble: int) -> int:
        return sum(1 + c * ensemble for c in self.n_prompt)

    def depths(self) -> list:
        d = []
        for p in self.parent:
            d.append(0 if p < 0 else d[p] + 1)
        return d


def top_paths(acc: np.ndarray, state: int, n: int) -> list:
    """The n most probable rank paths of depth 1..state, parent first: [(p, path tuple)]."""
    k, K = acc.shape
    state = min(state, k)
    out = []
    if state == 0 or n <= 0:
        return out
    heap = [(-float(acc[0, r]), 1, (r,)) for r in range(K)]
    heapq.heapify(heap)
    while heap and len(out) < n:
        neg, depth, path = heapq.heappop(heap)
        out.append((-neg, path))
        if depth < state:
            for r in range(K):
                heapq.heappush(heap, (neg * float(acc[depth, r]), depth + 1, path + (r,)))
    return out


class _Shape:
    """A tree's nodes (root + the first N paths): parents, ranks, p, q."""

    def __init__(self, paths: list):
        index = {(): 0}
        self.parent, self.rank, self.p = [-1], [-1], [1.0]
        for p, path in paths:
            index[path] = len(self.parent)
            self.parent.append(index[path[:-1]])
            self.rank.append(path[-1])
            self.p.append(p)
        q = list(self.p)
        for i in range(1, len(q)):
            q[self.parent[i]] -= self.p[i]
        self.q = [max(0.0, x) for x in q]
        self.e_acc = float(sum(self.p[1:]))


def assign_prompts(shape: _Shape, budget: int, k: int, ensemble: int, E: np.ndarray):
    """n_prompt per node by the greedy decrement, or None when even zero prompts exceed the budget."""
    n = len(shape.parent)
    if n > budget:
        return None
    c = [k] * n
    rows = n + n * k * ensemble
    heap = [(shape.q[i] * float(E[k] - E[k - 1]), -i) for i in range(n)] if k > 0 else []
    heapq.heapify(heap)
    while rows > budget:
        _, neg_i = heapq.heappop(heap)
        i = -neg_i
        c[i] -= 1
        rows -= ensemble
        if c[i] > 0:
            heapq.heappush(heap, (shape.q[i] * float(E[c[i]] - E[c[i] - 1]), -i))
    return c


def transition_row(shape: _Shape, c: list, k: int) -> np.ndarray:
    row = np.zeros(k + 1)
    for qi, ci in zip(shape.q, c):
        row[ci] += qi
    s = row.sum()
    return row / s if s > 0 else row


def long_run(P: np.ndarray, start: int, squarings: int = 40) -> np.ndarray:
    """Long-run state distribution of the chain(s) P [..., n, n] from `start` (the Cesaro limit;
    the lazy chain (I + P) / 2 has the same one and converges)."""
    n = P.shape[-1]
    M = 0.5 * (P + np.eye(n))
    for _ in range(squarings):
        M = M @ M
        M /= M.sum(axis=-1, keepdims=True)
    return M[..., start, :]


@dataclass
class _Option:
    n_nodes: int
    shape: _Shape
    n_prompt: list
    e_acc: float
    row: np.ndarray


def _options(acc, budget, k, ensemble, E, paths_by_state):
    """For each state, the feasible trees by node count: {s: [_Option]}."""
    out = {}
    for s in range(k + 1):
        opts = []
        paths = paths_by_state[s]
        for n_nodes in range(0, min(len(paths), budget - 1) + 1):
            shape = _Shape(paths[:n_nodes])
            c = assign_prompts(shape, budget, k, ensemble, E)
            if c is None:
                break
            opts.append(_Option(n_nodes, shape, c, shape.e_acc, transition_row(shape, c, k)))
        out[s] = opts
    return out


def _steady(rows: np.ndarray, e: np.ndarray, k: int) -> float:
    return float(long_run(rows, k) @ e)


def _ascend(options, choice, k):
    """Coordinate ascent over the states' node counts; returns (choice, steady)."""
    choice = list(choice)
    rows = np.stack([options[s][choice[s]].row for s in range(k + 1)])
    e = np.array([options[s][choice[s]].e_acc for s in range(k + 1)])
    best = _steady(rows, e, k)
    for _ in range(50):
        changed = False
        for s in range(k + 1):
            opts = options[s]
            if len(opts) <= 1:
                continue
            P = np.repeat(rows[None], len(opts), axis=0)
            P[:, s] = np.stack([o.row for o in opts])
            ev = np.repeat(e[None], len(opts), axis=0)
            ev[:, s] = [o.e_acc for o in opts]
            vals = np.einsum("bi,bi->b", long_run(P, k), ev)
            j = int(np.argmax(vals))
            if vals[j] > best + 1e-12 and j != choice[s]:
                choice[s], best = j, float(vals[j])
                rows[s], e[s] = opts[j].row, opts[j].e_acc
                changed = True
        if not changed:
            break
    return choice, best


def _discounted_values(rows: np.ndarray, e: np.ndarray, gamma: float) -> np.ndarray:
    """V = e + gamma * P V: expected discounted accepted tokens from each state."""
    n = rows.shape[0]
    return np.linalg.solve(np.eye(n) - gamma * rows, e)


def _one_step_search(acc, budget, k, ensemble, paths_by_state, E, max_iter):
    """Step 2-4 of the module docstring with E[c] = one step's expected accepted tokens."""
    best, prev_choice, seen = None, None, set()
    for _ in range(max_iter):
        options = _options(acc, budget, k, ensemble, E, paths_by_state)
        starts = [[int(np.argmax([o.e_acc for o in options[s]])) for s in range(k + 1)]]
        if prev_choice is not None:
            starts.append([min(c, len(options[s]) - 1) for s, c in enumerate(prev_choice)])
        choice, value = max((_ascend(options, st, k) for st in starts), key=lambda x: x[1])
        if best is None or value > best[0] + 1e-12:
            best = (value, [options[s][choice[s]] for s in range(k + 1)])
        newE = np.array([0.0] + [options[s][choice[s]].e_acc for s in range(1, k + 1)])
        key = (tuple(choice), tuple(np.round(newE, 12)))
        if key in seen:
            break
        seen.add(key)
        prev_choice, E = choice, newE
    return best


def _policy_iteration(acc, budget, k, ensemble, paths_by_state, E, max_iter, gamma):
    """The same trees chosen with E[c] = V[c], the discounted accepted tokens of all future steps
    from state c (policy iteration: each state's node count maximises e + gamma * sum q V[c])."""
    V = E / (1.0 - gamma)
    best, seen = None, set()
    for _ in range(max_iter):
        options = _options(acc, budget, k, ensemble, V, paths_by_state)
        choice = []
        for s in range(k + 1):
            score = [o.e_acc + gamma * float(o.row @ V) for o in options[s]]
            choice.append(int(np.argmax(score)))
        rows = np.stack([options[s][c].row for s, c in enumerate(choice)])
        e = np.array([options[s][c].e_acc for s, c in enumerate(choice)])
        value = _steady(rows, e, k)
        if best is None or value > best[0] + 1e-12:
            best = (value, [options[s][c] for s, c in enumerate(choice)])
        if tuple(choice) in seen:
            break
        seen.add(tuple(choice))
        V = _discounted_values(rows, e, gamma)
    return best


def build_budget(acc, budget: int, ensemble: int = 1, max_iter: int = 30, paths_by_state=None,
                 gamma: float = 0.98):
    """Trees for every state 0..k at one budget, and their steady-state accepted tokens per step."""
    acc = np.asarray(acc, dtype=np.float64)
    k, K = acc.shape
    if budget < 1:
        raise ValueError("budget must be at least 1")
    if paths_by_state is None:
        paths_by_state = {s: top_paths(acc, s, budget - 1) for s in range(k + 1)}
    # Initial E: the all-k-prompts tree of as many nodes as such a tree can have.
    n0 = max(0, budget // (1 + k * ensemble) - 1)
    E = np.array([0.0] + [_Shape(paths_by_state[c][:n0]).e_acc for c in range(1, k + 1)])
    a = _one_step_search(acc, budget, k, ensemble, paths_by_state, E, max_iter)
    b = _policy_iteration(acc, budget, k, ensemble, paths_by_state, E, max_iter, gamma)
    value, chosen = a if a[0] > b[0] + 1e-9 else b
    trees = [Tree(budget, s, list(o.shape.parent), list(o.shape.rank), list(o.n_prompt), o.e_acc, value)
             for s, o in enumerate(chosen)]
    return trees, value


def build_all(acc, ensemble: int = 1, min_budget: int | None = None, max_budget: int = 128,
              progress=None) -> list:
    """Trees for every budget min_budget..max_budget (default k * ensemble + 1 .. 128) and every
    state 0..k, ordered by budget then state."""
    acc = np.asarray(acc, dtype=np.float64)
    k, _ = acc.shape
    lo = k * ensemble + 1 if min_budget is None else min_budget
    paths_by_state = {s: top_paths(acc, s, max_budget - 1) for s in range(k + 1)}
    out = []
    prev = None
    for S in range(lo, max_budget + 1):
        trees, value = build_budget(acc, S, ensemble, paths_by_state=paths_by_state)
        if prev is not None and prev[1] > value + 1e-12:
            trees = [Tree(S, t.state, t.parent, t.rank, t.n_prompt, t.expected_accept, prev[1]) for t in prev[0]]
            value = prev[1]
        prev = (trees, value)
        out.extend(trees)
        if progress:
            progress(S, value)
    return out


# ----------------------------------------------------------------- checks by exhaustive enumeration


def enumerate_step(tree: Tree, acc, k: int):
    """Exact E_acc and next-state distribution of one step in `tree` under the independence model,
    by enumerating the model's token rank at every offset (rank r with acc[d][r], none otherwise):
    an independent check of the builder's formulas. Returns (expected accepted, row [k+1])."""
    acc = np.asarray(acc, dtype=np.float64)
    K = acc.shape[1]
    depth = tree.depths()
    children = {}
    for i, (p, r) in enumerate(zip(tree.parent, tree.rank)):
        if p >= 0:
            children[(p, r)] = i
    max_d = max(depth)
    row = np.zeros(k + 1)

    def walk(d, node, prob):
        if d == max_d:
            row[tree.n_prompt[node]] += prob
            return depth[node] * prob
        total = 0.0
        rest = 1.0 - acc[d].sum()
        for r in range(K + 1):
            pr = acc[d][r] if r < K else rest
            if pr <= 0:
                continue
            child = children.get((node, r)) if r < K and depth[node] == d else None
            total += walk(d + 1, child if child is not None else node, prob * pr)
        return total

    return walk(0, 0, 1.0), row
