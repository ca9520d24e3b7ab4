"""Backtracking line search: accepts a trial iff surrogate improvement >= 0 and KL <= delta
(the TRPO lecture's rule, both boundaries included); restores the parameters on failure."""

import math

import pytest
import torch

from robot_rl.rl import line_search


class Problem:
    """Parameters x in R^2 starting at x0; surrogate and KL given as functions of x."""

    def __init__(self, surrogate, kl, x0=(0.0, 0.0)):
        self.x0 = torch.tensor(x0, dtype=torch.float64)
        self.x = self.x0.clone()
        self.surrogate, self.kl = surrogate, kl
        self.trials: list[tuple[float, float]] = []

    def set_params(self, x):
        self.x = x.clone()

    def evaluate(self):
        out = (float(self.surrogate(self.x)), float(self.kl(self.x)))
        self.trials.append(out)
        return out

    def run(self, step, max_kl=0.01, max_steps=10, backtrack=0.5):
        return line_search(
            self.set_params,
            self.evaluate,
            self.x0,
            torch.tensor(step, dtype=torch.float64),
            float(self.surrogate(self.x0)),
            max_kl,
            max_steps,
            backtrack,
        )


def sq(x):
    return float((x**2).sum())


def test_shrinks_until_kl_bound_holds():
    # surrogate improves linearly along the step; KL = |dx|^2 = 0.25, 0.0625, 0.015625 (exact
    # in binary), so the third trial sits exactly on the bound and is accepted
    p = Problem(lambda x: x[0], sq)
    res = p.run([0.5, 0.0], max_kl=0.015625)
    assert res.accepted and res.backtracks == 2 and res.step_fraction == 0.25
    assert res.kl == 0.015625
    assert res.improvement == pytest.approx(0.125)
    torch.testing.assert_close(p.x, torch.tensor([0.125, 0.0], dtype=torch.float64))


def test_shrinks_until_surrogate_improves():
    # surrogate peaks at 10% of the full step; KL is never a problem
    p = Problem(lambda x: -((x[0] - 0.1) ** 2), lambda x: 0.0)
    res = p.run([1.0, 0.0], max_kl=1.0)
    # fractions 1, .5, .25 are worse than x0; .125 is better
    assert res.accepted and res.backtracks == 3 and res.step_fraction == 0.125
    assert res.improvement > 0


def test_zero_improvement_on_the_kl_bound_is_accepted():
    # the surrogate does not change along the step (improvement exactly 0) and the KL of
    # the full step is exactly delta (0.25^2 + 0 in binary): both boundaries of the rule
    # are inclusive, so the full step is accepted
    p = Problem(lambda x: 0.5 + 0.0 * x[0], sq)
    res = p.run([0.25, 0.0], max_kl=0.0625)
    assert res.accepted and res.backtracks == 0 and res.step_fraction == 1.0
    assert res.improvement == 0.0 and res.kl == 0.0625
    torch.testing.assert_close(p.x, torch.tensor([0.25, 0.0], dtype=torch.float64))


def test_the_smallest_decrease_is_rejected():
    # improvement of one ulp below zero at every trial: never accepted
    s0 = 0.5
    p = Problem(lambda x: s0 if float(x.abs().sum()) == 0.0 else math.nextafter(s0, 0.0),
                lambda x: 0.0)
    res = p.run([0.25, 0.0], max_kl=1.0, max_steps=3)
    assert not res.accepted and res.improvement < 0.0 and torch.equal(p.x, p.x0)


def test_rejects_everything_and_restores_parameters():
    p = Problem(lambda x: -x[0], sq)  # the step makes the surrogate worse at every length
    res = p.run([0.05, 0.0], max_kl=0.01, max_steps=6)
    assert not res.accepted and res.step_fraction == 0.0 and res.backtracks == 6
    assert len(p.trials) == 6
    assert torch.equal(p.x, p.x0)


def test_kl_too_large_at_every_trial_restores_parameters():
    p = Problem(lambda x: x[0], lambda x: 1.0)  # improving but KL always above delta
    res = p.run([1.0, 0.0], max_kl=0.01, max_steps=4)
    assert not res.accepted and torch.equal(p.x, p.x0)


def test_non_finite_trials_are_rejected():
    p = Problem(lambda x: float("nan") if x[0] > 0.3 else x[0], lambda x: 0.0)
    res = p.run([1.0, 0.0], max_kl=0.1)
    assert res.accepted and res.step_fraction == 0.25 and math.isfinite(res.improvement)


def test_random_problems_never_violate_the_acceptance_rule():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        a = torch.randn(2, generator=g, dtype=torch.float64)
        c = torch.rand(2, generator=g, dtype=torch.float64) * 3
        p = Problem(lambda x, a=a: float(a @ x - (x**2).sum()), lambda x, c=c: float(c @ x**2))
        step = torch.randn(2, generator=g, dtype=torch.float64).tolist()
        res = p.run(step, max_kl=0.01, max_steps=8, backtrack=0.7)
        if res.accepted:
            assert res.kl <= 0.01 and res.improvement >= 0
            assert p.trials[res.backtracks] == (p.surrogate(p.x), p.kl(p.x))
            # every earlier trial violated a condition
            s0 = p.surrogate(p.x0)
            assert all(s - s0 < 0 or k > 0.01 for s, k in p.trials[: res.backtracks])
        else:
            assert torch.equal(p.x, p.x0)
