"""TRPO's theory, checked exactly on random small tabular MDPs.

Schulman et al. 2015 ("Trust Region Policy Optimization", TRPO) and Kakade & Langford 2002
state a few exact results about the surrogate

    L_pi(pi~) = eta(pi) + sum_s rho_pi(s) sum_a pi~(a|s) A_pi(s, a)

that the practical algorithm rests on.  On a finite MDP every quantity is computable exactly
by a linear solve, so the results can be checked as properties over many random
(MDP, pi, pi~) triples:

1. ``L_pi(pi) = eta(pi)`` and ``grad_theta L_{pi_theta0}(pi_theta)|theta0 =
   grad_theta eta(pi_theta)|theta0`` (the surrogate is a first-order match of eta).
2. The policy-update identity ``eta(pi~) = eta(pi) + sum_s rho_pi~(s) sum_a pi~(a|s)
   A_pi(s, a)`` (exact: the visitation is that of the *new* policy).
3. Theorem 1: ``eta(pi~) >= L_pi(pi~) - 4 eps gamma alpha^2 / (1 - gamma)^2`` and its KL
   form ``eta(pi~) >= L_pi(pi~) - C max_s D_KL(pi(.|s) || pi~(.|s))``, with Pinsker's
   ``alpha^2 <= max_s D_KL`` linking them; plus an MDP built so the bound is nearly attained,
   so each factor of the constant matters.
4. The minorize-maximize step (maximize ``M(pi~) = L_pi(pi~) - C max_s D_KL``) never
   decreases eta, and does increase it.

Conventions (those of the TRPO paper):

* ``eta(pi) = E[sum_t gamma^t r(s_t, a_t)]`` with ``s_0 ~ rho0``; reward ``r[s, a]``;
  transitions ``P[s, a, s']``; ``V = (I - gamma P_pi)^-1 r_pi``, ``eta = rho0 . V``,
  ``Q = r + gamma P V``, ``A = Q - V``.
* ``rho_pi(s) = sum_t gamma^t P(s_t = s)`` is the *unnormalized* discounted visitation
  (it sums to ``1 / (1 - gamma)``): ``rho_pi = (I - gamma P_pi^T)^-1 rho0``.
* ``eps = max_{s,a} |A_pi(s, a)|``; ``alpha = max_s D_TV(pi(.|s), pi~(.|s))`` with
  ``D_TV(p, q) = 1/2 sum_i |p_i - q_i|``; ``C = 4 eps gamma / (1 - gamma)^2``.
* Policies are softmax over logits ``theta[s, a]`` (the hand-built tight example uses
  probability tables with zeros).  Everything is float64 (numpy; torch
  float64 where autograd is needed).  All randomness comes from seeded numpy Generators.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def _one_blas_thread() -> Iterator[None]:
    """Tiny solves on a shared machine: multi-threaded BLAS only adds contention (~5x)."""
    with threadpool_limits(limits=1, user_api="blas"):  # restores the limits afterwards
        yield


# ---------------------------------------------------------------------------------------
# A tiny exact tabular toolkit
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TabularMDP:
    """A finite discounted MDP: ``P[s, a, s']``, ``r[s, a]``, ``rho0[s]``, ``gamma``."""

    P: np.ndarray
    r: np.ndarray
    rho0: np.ndarray
    gamma: float

    @property
    def n_states(self) -> int:
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        return self.P.shape[1]


@dataclass(frozen=True)
class Evaluation:
    """Exact quantities of one policy on one MDP."""

    eta: float
    V: np.ndarray  # [S]
    Q: np.ndarray  # [S, A]
    A: np.ndarray  # [S, A]
    rho: np.ndarray  # [S], unnormalized discounted visitation


def random_mdp(
    rng: np.random.Generator,
    n_states: tuple[int, int] = (3, 6),
    n_actions: tuple[int, int] = (2, 4),
    gamma: tuple[float, float] = (0.6, 0.95),
) -> TabularMDP:
    """A random MDP with fairly peaked (Dirichlet 0.5) transitions and rewards in [-1, 1]."""
    S = int(rng.integers(n_states[0], n_states[1] + 1))
    A = int(rng.integers(n_actions[0], n_actions[1] + 1))
    P = rng.dirichlet(0.5 * np.ones(S), size=(S, A))
    r = rng.uniform(-1.0, 1.0, size=(S, A))
    rho0 = rng.dirichlet(np.ones(S))
    return TabularMDP(P=P, r=r, rho0=rho0, gamma=float(rng.uniform(*gamma)))


def softmax(theta: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits ``theta[s, a]``."""
    z = np.exp(theta - theta.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def evaluate(mdp: TabularMDP, pi: np.ndarray) -> Evaluation:
    """Exact V, Q, A, rho and eta of the stochastic policy ``pi[s, a]`` by linear solves."""
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)
    r_pi = (pi * mdp.r).sum(axis=1)
    M = np.eye(mdp.n_states) - mdp.gamma * P_pi
    V = np.linalg.solve(M, r_pi)
    Q = mdp.r + mdp.gamma * mdp.P @ V
    rho = np.linalg.solve(M.T, mdp.rho0)
    return Evaluation(eta=float(mdp.rho0 @ V), V=V, Q=Q, A=Q - V[:, None], rho=rho)


def eta_of(mdp: TabularMDP, pi: np.ndarray) -> float:
    """Exact expected discounted return of ``pi``."""
    return evaluate(mdp, pi).eta


def surrogate(ev: Evaluation, pi_new: np.ndarray) -> float:
    """``L_pi(pi~) = eta(pi) + sum_s rho_pi(s) sum_a pi~(a|s) A_pi(s, a)``."""
    return ev.eta + float(ev.rho @ (pi_new * ev.A).sum(axis=1))


def tv_per_state(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``D_TV(p(.|s), q(.|s)) = 1/2 ||p - q||_1`` for each state."""
    return 0.5 * np.abs(p - q).sum(axis=1)


def kl_per_state(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``D_KL(p(.|s) || q(.|s))`` for each state (``0 log 0 = 0``; ``q > 0`` assumed)."""
    safe_p = np.where(p > 0, p, 1.0)
    return np.where(p > 0, p * (np.log(safe_p) - np.log(q)), 0.0).sum(axis=1)


def penalty_coefficient(ev: Evaluation, gamma: float) -> float:
    """TRPO's ``C = 4 eps gamma / (1 - gamma)^2`` with ``eps = max_{s,a} |A_pi(s, a)|``."""
    eps = float(np.abs(ev.A).max())
    return 4.0 * eps * gamma / (1.0 - gamma) ** 2


def eta_torch(mdp: TabularMDP, theta: torch.Tensor) -> torch.Tensor:
    """eta(pi_theta) in torch float64, differentiable through the linear solve."""
    P = torch.as_tensor(mdp.P)
    r = torch.as_tensor(mdp.r)
    pi = torch.softmax(theta, dim=1)
    P_pi = torch.einsum("sa,sat->st", pi, P)
    r_pi = (pi * r).sum(dim=1)
    M = torch.eye(mdp.n_states, dtype=torch.float64) - mdp.gamma * P_pi
    V = torch.linalg.solve(M, r_pi)
    return torch.as_tensor(mdp.rho0) @ V


# ---------------------------------------------------------------------------------------
# 0. The evaluator itself (everything else leans on it)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_exact_evaluation_matches_power_series(seed: int) -> None:
    """V, rho and eta from the linear solves agree with the truncated series sum_t gamma^t."""
    rng = np.random.default_rng(seed)
    mdp = random_mdp(rng, gamma=(0.6, 0.8))
    pi = softmax(rng.normal(size=(mdp.n_states, mdp.n_actions)))
    ev = evaluate(mdp, pi)
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)
    r_pi = (pi * mdp.r).sum(axis=1)
    d, rho_series, eta_series = mdp.rho0.copy(), np.zeros(mdp.n_states), 0.0
    for t in range(400):  # gamma <= 0.8: the tail is below 0.8^400 / 0.2 ~ 1e-38
        rho_series += mdp.gamma**t * d
        eta_series += mdp.gamma**t * float(d @ r_pi)
        d = d @ P_pi
    np.testing.assert_allclose(ev.rho, rho_series, rtol=1e-12, atol=1e-12)
    assert ev.eta == pytest.approx(eta_series, rel=1e-12, abs=1e-12)
    assert ev.rho.sum() == pytest.approx(1.0 / (1.0 - mdp.gamma), rel=1e-12)
    assert ev.eta == pytest.approx(float(ev.rho @ r_pi), rel=1e-12, abs=1e-12)
    # sum_a pi(a|s) A_pi(s, a) = 0 in every state
    np.testing.assert_allclose((pi * ev.A).sum(axis=1), 0.0, atol=1e-12)


# ---------------------------------------------------------------------------------------
# 1. The surrogate is a first-order match of eta
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_surrogate_matches_eta_value_and_gradient_at_pi(seed: int) -> None:
    """``L_pi(pi) = eta(pi)`` and ``grad L_{pi_theta0}(pi_theta)|theta0 = grad eta|theta0``."""
    rng = np.random.default_rng(100 + seed)
    mdp = random_mdp(rng, gamma=(0.6, 0.9))
    theta0 = rng.normal(scale=1.5, size=(mdp.n_states, mdp.n_actions))
    pi0 = softmax(theta0)
    ev = evaluate(mdp, pi0)

    assert surrogate(ev, pi0) == pytest.approx(ev.eta, rel=1e-12, abs=1e-12)

    # Left: autograd of L_{pi_theta0}(pi_theta) with rho, A frozen at theta0.
    theta = torch.tensor(theta0, requires_grad=True)
    pi = torch.softmax(theta, dim=1)
    L = ev.eta + torch.as_tensor(ev.rho) @ (pi * torch.as_tensor(ev.A)).sum(dim=1)
    (grad_L,) = torch.autograd.grad(L, theta)
    grad_L = grad_L.numpy()

    # Right (a): autograd through the exact linear solve for eta.  Same function, exact
    # arithmetic up to float64 rounding of a small solve.
    theta_e = torch.tensor(theta0, requires_grad=True)
    (grad_eta,) = torch.autograd.grad(eta_torch(mdp, theta_e), theta_e)
    grad_eta = grad_eta.numpy()
    scale = 1.0 + np.abs(grad_eta).max()
    np.testing.assert_allclose(grad_L, grad_eta, rtol=0.0, atol=1e-10 * scale)

    # Right (b): central finite differences of the numpy eta.  Error of a central difference
    # is h^2/6 |eta'''| (truncation) + ~eps_mach |eta| / h (rounding).  With h = 1e-5,
    # |eta| <= 1/(1-gamma) <= 10 and third logit-derivatives of eta of order
    # 1/(1-gamma)^3 <= 1e3, that is <= 1e-10 * 1e3 / 6 + 1e-16 * 10 / 1e-5 ~ 2e-8 (observed:
    # <= 5e-11).  The tolerance 1e-6 * (1 + max|grad|) covers it 50x over, and is still
    # ~1e4 times smaller than the gradient error of a wrong surrogate (e.g. a normalized
    # rho, off by gamma * grad; max|grad| >= 4e-2 on these seeds).
    h = 1e-5
    grad_fd = np.zeros_like(theta0)
    for idx in np.ndindex(*theta0.shape):
        e = np.zeros_like(theta0)
        e[idx] = h
        grad_fd[idx] = (eta_of(mdp, softmax(theta0 + e)) - eta_of(mdp, softmax(theta0 - e))) / (
            2 * h
        )
    np.testing.assert_allclose(grad_L, grad_fd, rtol=0.0, atol=1e-6 * scale)
    assert np.abs(grad_fd).max() > 1e-3  # the comparison is not between two zeros


# ---------------------------------------------------------------------------------------
# 2. The policy-update identity (Kakade & Langford; TRPO eq. 2)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_policy_update_identity_is_exact(seed: int) -> None:
    """``eta(pi~) = eta(pi) + sum_s rho_pi~(s) sum_a pi~(a|s) A_pi(s, a)`` for any pair."""
    rng = np.random.default_rng(200 + seed)
    for _ in range(20):
        mdp = random_mdp(rng)
        shape = (mdp.n_states, mdp.n_actions)
        theta = rng.normal(scale=2.0, size=shape)
        pi = softmax(theta)
        pi_new = softmax(theta + 10 ** rng.uniform(-2, 1) * rng.normal(size=shape))
        ev, ev_new = evaluate(mdp, pi), evaluate(mdp, pi_new)
        rhs = ev.eta + float(ev_new.rho @ (pi_new * ev.A).sum(axis=1))
        scale = 1.0 / (1.0 - mdp.gamma)  # |eta| <= max|r| / (1 - gamma), max|r| <= 1
        assert ev_new.eta == pytest.approx(rhs, rel=1e-10, abs=1e-10 * scale)


# ---------------------------------------------------------------------------------------
# 3. The lower bound (TRPO Theorem 1) and its KL form
# ---------------------------------------------------------------------------------------


def _random_pair(rng: np.random.Generator, mdp: TabularMDP) -> tuple[np.ndarray, np.ndarray]:
    """(pi, pi~), tiny to far apart: logit noise, a mixture, or one state perturbed."""
    shape = (mdp.n_states, mdp.n_actions)
    theta = rng.normal(scale=2.0, size=shape)
    pi = softmax(theta)
    kind = rng.integers(3)
    if kind == 0:  # logit noise, log-uniform scale 1e-3 .. 10 (near .. nearly deterministic)
        pi_new = softmax(theta + 10 ** rng.uniform(-3, 1) * rng.normal(size=shape))
    elif kind == 1:  # mixture toward an unrelated random policy
        t = 10 ** rng.uniform(-3, 0)
        pi_new = (1 - t) * pi + t * softmax(rng.normal(scale=3.0, size=shape))
    else:  # perturb only one state (alpha and the max-KL are attained there)
        theta_new = theta.copy()
        s = rng.integers(mdp.n_states)
        theta_new[s] += 10 ** rng.uniform(-3, 1) * rng.normal(size=mdp.n_actions)
        pi_new = softmax(theta_new)
    return pi, pi_new


@pytest.mark.parametrize("seed", range(6))
def test_policy_improvement_bound_tv_and_kl(seed: int) -> None:
    """``eta(pi~) >= L_pi(pi~) - 4 eps gamma alpha^2/(1-gamma)^2`` over 6 x 60 random pairs."""
    rng = np.random.default_rng(300 + seed)
    n_pairs, alphas, gaps = 60, [], []
    for _ in range(n_pairs):
        mdp = random_mdp(rng)
        pi, pi_new = _random_pair(rng, mdp)
        ev = evaluate(mdp, pi)
        eta_new = eta_of(mdp, pi_new)
        L = surrogate(ev, pi_new)
        C = penalty_coefficient(ev, mdp.gamma)
        alpha = float(tv_per_state(pi, pi_new).max())
        max_kl = float(kl_per_state(pi, pi_new).max())
        tol = 1e-10 / (1.0 - mdp.gamma)  # float64 solves on eta-sized numbers

        assert eta_new >= L - C * alpha**2 - tol  # TV form (Theorem 1)
        assert alpha**2 <= 0.5 * max_kl + 1e-15  # Pinsker: D_TV^2 <= D_KL / 2 <= D_KL
        assert eta_new >= L - C * max_kl - tol  # KL form (the TRPO paper's eq. 9)
        alphas.append(alpha)
        gaps.append(L - eta_new)

    # The sample covers near and far pairs, and pairs where L overestimates eta (so that a
    # missing penalty would be caught).
    assert min(alphas) < 1e-2 and max(alphas) > 0.3
    assert max(gaps) > 1e-6


def _tight_example(
    gamma: float, alpha: float, eps: float
) -> tuple[TabularMDP, np.ndarray, np.ndarray]:
    """An MDP and (pi, pi~) on which Theorem 1 is attained up to ``1 + gamma alpha/(1-gamma)``.

    States 0 (start) and 1 (absorbing); actions a0, a1 keep the state, a2 moves 0 -> 1.
    Advantages under pi are ``A(0) = (+eps, -eps, +eps)``, ``A(1) = (+eps, -eps, 0)`` with
    ``pi(0) = pi(1) = (1/2, 1/2, 0)``, so pi never leaves state 0.  pi~ moves alpha of
    probability from a1 to a2 in state 0 (locally better, but leads to state 1) and from a0
    to a1 in state 1 (locally worse).  The rewards are backed out from those advantages and
    an arbitrary V, ``r = V(s) + A(s, a) - gamma sum_s' P V``.  Then (derivable by hand)
    ``L_pi(pi~) - eta(pi~) = 4 eps alpha^2 gamma / ((1 - gamma)(1 - gamma + gamma alpha))``.
    """
    P = np.zeros((2, 3, 2))
    P[0, 0, 0] = P[0, 1, 0] = P[0, 2, 1] = 1.0
    P[1, :, 1] = 1.0
    A = np.array([[eps, -eps, eps], [eps, -eps, 0.0]])
    V = np.array([0.7, -1.3])
    r = V[:, None] + A - gamma * P @ V
    mdp = TabularMDP(P=P, r=r, rho0=np.array([1.0, 0.0]), gamma=gamma)
    pi = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    pi_new = np.array([[0.5, 0.5 - alpha, alpha], [0.5 - alpha, 0.5 + alpha, 0.0]])
    return mdp, pi, pi_new


@pytest.mark.parametrize("gamma", [0.6, 0.9, 0.95])
@pytest.mark.parametrize("alpha", [1e-3, 1e-2, 0.1])
def test_policy_improvement_bound_is_nearly_tight(gamma: float, alpha: float) -> None:
    """On a constructed MDP the gap ``L - eta`` reaches ``(1-gamma)/(1-gamma+gamma alpha)``
    of the penalty ``4 eps gamma alpha^2/(1-gamma)^2``: every factor of the constant counts."""
    eps = 0.8
    mdp, pi, pi_new = _tight_example(gamma, alpha, eps)
    ev = evaluate(mdp, pi)
    np.testing.assert_allclose(ev.V, [0.7, -1.3], atol=1e-12)  # the construction held
    assert float(np.abs(ev.A).max()) == pytest.approx(eps, rel=1e-12)
    assert float(tv_per_state(pi, pi_new).max()) == pytest.approx(alpha, rel=1e-12)

    gap = surrogate(ev, pi_new) - eta_of(mdp, pi_new)
    expected_gap = 4 * eps * alpha**2 * gamma / ((1 - gamma) * (1 - gamma + gamma * alpha))
    assert gap == pytest.approx(expected_gap, rel=1e-8)

    penalty = penalty_coefficient(ev, gamma) * alpha**2
    assert gap <= penalty + 1e-12  # Theorem 1 holds ...
    # ... and is nearly attained: ratio (1-gamma)/(1-gamma+gamma alpha), >= 0.34 here.
    assert gap / penalty == pytest.approx((1 - gamma) / (1 - gamma + gamma * alpha), rel=1e-8)
    assert gap / penalty > 0.3


# ---------------------------------------------------------------------------------------
# 4. Exact TRPO: the minorize-maximize step is monotone
# ---------------------------------------------------------------------------------------


def _mm_objective(ev: Evaluation, pi: np.ndarray, pi_new: np.ndarray, C: float) -> float:
    """``M(pi~) = L_pi(pi~) - C max_s D_KL(pi(.|s) || pi~(.|s))``."""
    return surrogate(ev, pi_new) - C * float(kl_per_state(pi, pi_new).max())


def mm_step(mdp: TabularMDP, theta: np.ndarray) -> tuple[np.ndarray, float, float]:
    """One exact TRPO step: maximize M over softmax logits, starting from pi_theta.

    The max over states is handled in epigraph form: maximize ``L(theta~) - C t`` subject to
    ``D_KL(pi(.|s) || pi~(.|s)) <= t`` for every s (SLSQP, analytic gradients).  The result
    is kept only if its exact M is at least ``M(pi) = eta(pi)``, which is all the guarantee
    needs.  Returns (new logits, M(pi), M(pi~)).
    """
    pi = softmax(theta)
    ev = evaluate(mdp, pi)
    C = penalty_coefficient(ev, mdp.gamma)
    S, A = theta.shape

    def neg_obj(x: np.ndarray) -> float:
        p = softmax(x[:-1].reshape(S, A))
        return -(float(ev.rho @ (p * ev.A).sum(axis=1)) - C * x[-1])

    def neg_obj_grad(x: np.ndarray) -> np.ndarray:
        p = softmax(x[:-1].reshape(S, A))
        adv_bar = (p * ev.A).sum(axis=1, keepdims=True)
        g_theta = ev.rho[:, None] * p * (ev.A - adv_bar)  # dL/dtheta~
        return -np.concatenate([g_theta.ravel(), [-C]])

    def cons(x: np.ndarray) -> np.ndarray:  # t - KL_s >= 0
        return x[-1] - kl_per_state(pi, softmax(x[:-1].reshape(S, A)))

    def cons_jac(x: np.ndarray) -> np.ndarray:
        p = softmax(x[:-1].reshape(S, A))
        jac = np.zeros((S, S * A + 1))
        for s in range(S):
            jac[s, s * A : (s + 1) * A] = -(p[s] - pi[s])  # d KL_s / d theta~[s] = pi~ - pi
        jac[:, -1] = 1.0
        return jac

    x0 = np.concatenate([theta.ravel(), [0.0]])
    res = minimize(
        neg_obj,
        x0,
        jac=neg_obj_grad,
        method="SLSQP",
        constraints=[{"type": "ineq", "fun": cons, "jac": cons_jac}],
        options={"maxiter": 200, "ftol": 1e-10},
    )
    theta_new = res.x[:-1].reshape(S, A)
    m_old = _mm_objective(ev, pi, pi, C)
    m_new = _mm_objective(ev, pi, softmax(theta_new), C)
    if not np.all(np.isfinite(theta_new)) or m_new < m_old:
        return theta, m_old, m_old
    return theta_new, m_old, m_new


@pytest.mark.parametrize("seed", range(3))
def test_exact_trpo_mm_step_is_monotone(seed: int) -> None:
    """10 MDPs x 10 MM steps per seed: eta never decreases, and it increases on most MDPs."""
    rng = np.random.default_rng(400 + seed)
    n_mdps, n_iters, improved = 10, 10, 0
    for _ in range(n_mdps):
        mdp = random_mdp(rng, gamma=(0.6, 0.8))
        theta = rng.normal(scale=1.0, size=(mdp.n_states, mdp.n_actions))
        etas = [eta_of(mdp, softmax(theta))]
        for _ in range(n_iters):
            theta, m_old, m_new = mm_step(mdp, theta)
            eta_new = eta_of(mdp, softmax(theta))
            assert m_old == pytest.approx(etas[-1], rel=1e-12, abs=1e-12)  # M(pi) = eta(pi)
            assert eta_new >= m_new - 1e-9  # M minorizes eta (Theorem 1, KL form)
            assert eta_new >= etas[-1] - 1e-9  # hence monotone improvement
            etas.append(eta_new)
        if etas[-1] - etas[0] > 1e-6:
            improved += 1
    assert improved >= n_mdps - 1
