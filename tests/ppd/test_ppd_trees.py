"""ppd_trees: the sparse-tree builder (tools/ppd/trees.py) on synthetic accuracy tables.

1. A case computed by hand: k = 1 prompt token, K = 2 ranks, acc = [0.6, 0.2], m = 1. States 0 and
   1; state 0's tree is the root with one prompt token (next state 1). In state 1 the candidates
   are node a (rank 0, p = 0.6) and node b (rank 1, p = 0.2):
     S = 2: root + a, no prompt tokens (2 rows): E = 0.6, always back to state 0;
            pi = (1/2, 1/2), steady = 0.3. (Root alone with its prompt: steady 0.)
     S = 3: root + a, one prompt token: q(root) = 0.4 < q(a) = 0.6, so the root's goes; state 1
            returns to 1 with 0.6: pi_1 = 1 / 1.4, steady = 0.6 / 1.4 = 3/7 (beats root + a + b
            without prompts: 0.8 / 2 = 0.4).
     S = 4: root + a, both with their prompt token: state 1 forever, steady 0.6 (root + a + b
            with a's prompt only: 0.8 * (1 / 1.4) = 4/7 < 0.6).
     S = 5: root + a + b, two prompt tokens: q = (0.2, 0.6, 0.2): a keeps its token and one of
            root / b keeps one: back to 1 with 0.8: pi_1 = 1 / 1.2, steady = 0.8 / 1.2 = 2/3.
     S = 6: root + a + b, all with a token: steady 0.8 (and so for every larger budget).
2. A realistic k = 3, K = 10 table, budgets 4..64, m = 1 and m = 2: every tree obeys the format's
   rules (artifact.validate), the stored expected_accept of every tree equals an exhaustive
   enumeration of the model tokens' ranks (trees.enumerate_step), the stored steady value equals
   the long-run average recomputed from those enumerated transitions, and the steady value never
   decreases with the budget.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools" / "ppd"))

import artifact  # noqa: E402
import trees  # noqa: E402


def close(a, b, tol=1e-9):
    return abs(a - b) <= tol


def hand_case() -> None:
    acc = np.array([[0.6, 0.2]])
    want = {2: 0.3, 3: 3 / 7, 4: 0.6, 5: 2 / 3, 6: 0.8, 7: 0.8}
    built = trees.build_all(acc, ensemble=1, max_budget=7)
    assert min(t.budget for t in built) == 2, "budgets start at k * m + 1"
    by = {(t.budget, t.state): t for t in built}
    for S, v in want.items():
        t0, t1 = by[(S, 0)], by[(S, 1)]
        assert close(t1.steady_accept, v) and close(t0.steady_accept, v), (S, t1.steady_accept, v)
        assert t0.parent == [-1] and t0.n_prompt == [1], (S, t0)
    shapes = {  # (parent, rank, n_prompt) of state 1's tree
        2: ([-1, 0], [-1, 0], [0, 0]),
        3: ([-1, 0], [-1, 0], [0, 1]),
        4: ([-1, 0], [-1, 0], [1, 1]),
        6: ([-1, 0, 0], [-1, 0, 1], [1, 1, 1]),
    }
    for S, (parent, rank, n_prompt) in shapes.items():
        t = by[(S, 1)]
        assert (t.parent, t.rank, t.n_prompt) == (parent, rank, n_prompt), (S, t)
    t5 = by[(5, 1)]
    assert t5.parent == [-1, 0, 0] and t5.rank == [-1, 0, 1] and t5.n_prompt[1] == 1 and sum(t5.n_prompt) == 2
    assert close(by[(2, 1)].expected_accept, 0.6) and close(by[(6, 1)].expected_accept, 0.8)
    print("ppd trees: hand case (k = 1, acc = [0.6, 0.2]) matches for budgets 2..7")


def realistic(ensemble: int) -> None:
    k, K = 3, 10
    base = np.array([0.45, 0.12, 0.06, 0.04, 0.03, 0.02, 0.015, 0.012, 0.01, 0.008])
    acc = np.stack([base, base * 0.75, base * 0.6])
    t0 = time.time()
    built = trees.build_all(acc, ensemble=ensemble, max_budget=64)
    seconds = time.time() - t0
    a = artifact.Artifact(np.zeros((k * ensemble, 8), np.float32), k, ensemble, K, "synthetic", 8, 100, 1, 0,
                          acc.astype(np.float32), built)
    artifact.validate(a, "synthetic")
    budgets = sorted({t.budget for t in built})
    assert budgets == list(range(k * ensemble + 1, 65)), budgets
    prev = -1.0
    for S in budgets:
        ts = sorted((t for t in built if t.budget == S), key=lambda t: t.state)
        assert [t.state for t in ts] == list(range(k + 1))
        rows, e = [], []
        for t in ts:
            ee, row = trees.enumerate_step(t, acc, k)
            assert close(ee, t.expected_accept, 1e-9), (S, t.state, ee, t.expected_accept)
            assert close(row.sum(), 1.0, 1e-9)
            rows.append(row)
            e.append(ee)
        steady = float(trees.long_run(np.array(rows), k) @ np.array(e))
        assert close(steady, ts[0].steady_accept, 1e-6), (S, steady, ts[0].steady_accept)
        assert ts[0].steady_accept >= prev - 1e-12, (S, ts[0].steady_accept, prev)
        prev = ts[0].steady_accept
    s64 = [t for t in built if t.budget == 64]
    print(f"ppd trees: k = 3, m = {ensemble}: {len(built)} trees valid and consistent in {seconds:.1f} s; "
          f"steady accept {min(t.steady_accept for t in built):.3f} (S = {k * ensemble + 1}) .. "
          f"{s64[0].steady_accept:.3f} (S = 64), nodes per state at 64: {[len(t.parent) for t in s64]}")


def main() -> int:
    hand_case()
    realistic(1)
    realistic(2)
    print("ppd trees: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
