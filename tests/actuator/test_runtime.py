"""The batched evaluator: same numbers as the trained network, per-env history and reset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actuator_net.data import INPUT_LAYOUT, LAG_ERROR_LAYOUT, ActuatorSeries, history
from actuator_net.runtime import ActuatorNetEvaluator, NumpyActuatorNet


@pytest.fixture(scope="module")
def shared(small_actuator_net):
    return small_actuator_net("shared")


@pytest.fixture(scope="module")
def typed(small_actuator_net):
    return small_actuator_net("a,b,a")


@pytest.fixture(scope="module")
def linear(small_actuator_net):
    """A network with a linear term (actuator_net.model), typed."""
    path, model = small_actuator_net("a,b,a", tau_max=40.0)
    assert model.lin_w.abs().sum() > 0
    return (path, model)


@pytest.fixture(scope="module")
def lags5(small_actuator_net):
    """A network with 5 history steps (0 to 40 ms: as the logs of a slow actuator choose,
    actuator_net.response) and a linear term, typed."""
    path, model = small_actuator_net("a,b,a", tau_max=40.0, num_lags=5)
    assert model.num_inputs == 10 and model.lin_w.abs().sum() > 0
    return (path, model)


@pytest.fixture(scope="module")
def lagged(small_actuator_net):
    """A network of the former input layout (each lag's own position error), as every
    checkpoint written before 2026-12-03: it still runs as it was trained."""
    path, model = small_actuator_net("a,b,a", tau_max=40.0, error_reference="lag")
    return (path, model)


def _signals(steps, envs, joints, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(steps)[:, None, None]
    f = rng.uniform(0.5, 3, (1, envs, joints))
    e = 0.3 * np.sin(2 * np.pi * f * t * 0.002 + rng.uniform(0, 6, (1, envs, joints)))
    v = 2.0 * np.cos(2 * np.pi * f * t * 0.003 + rng.uniform(0, 6, (1, envs, joints)))
    q = rng.normal(size=(steps, envs, joints))
    return e + q, q, v  # q_target, q, qd


@pytest.mark.parametrize("physics_dt", [0.005, 0.002, 0.004, 0.003])
@pytest.mark.parametrize("which", ["shared", "typed", "linear", "lags5", "lagged"])
def test_matches_network_on_logged_history(physics_dt, which, request):
    """At every step the evaluator's torque equals the network on the log-style window
    (stride when h / dt is an integer, linear interpolation otherwise), for 3 lags and 5."""
    path, model = request.getfixturevalue(which)
    nl = model.num_inputs // 2
    steps, envs, nj = 60, 4, 3
    qt, q, qd = _signals(steps, envs, nj, seed=1)
    ev = ActuatorNetEvaluator(path, num_envs=envs, physics_dt=physics_dt)
    assert ev.num_lags == nl
    out = np.stack([ev(qt[k], q[k], qd[k]) for k in range(steps)])
    t = np.arange(steps) * physics_dt
    first = int(np.ceil((nl - 1) * 0.01 / physics_dt - 1e-9))
    rows = np.arange(first, steps)
    for n in range(envs):
        s = ActuatorSeries(time=t, pos_error=qt[:, n] - q[:, n], vel=qd[:, n], tau=qd[:, n],
                           joint_names=["a", "b", "c"], source="sim", pos=q[:, n])
        with torch.no_grad():
            x = history(s, rows, 0.01, nl, LAG_ERROR_LAYOUT if which == "lagged" else INPUT_LAYOUT)
            want = model(torch.tensor(x, dtype=torch.float32)).numpy()
        # float32 both ways, but not the same arithmetic: scaling folded into the weights
        # vs applied to the inputs, and a batched matmul vs one env's: a few ulps of the
        # torque (measured 2.6e-6 N m); 2e-4 also covers the interpolated lags' float32
        # rounding, while a lag off by one physics step moves the torque by ~1e-1
        np.testing.assert_allclose(out[rows, n], want, atol=2e-4, rtol=1e-5)


def test_reset_clears_history_of_chosen_envs_only(shared):
    path, _ = shared
    envs, nj = 3, 3
    qt, q, qd = _signals(40, envs, nj, seed=2)
    ev = ActuatorNetEvaluator(path, num_envs=envs, physics_dt=0.005)
    ref = ActuatorNetEvaluator(path, num_envs=envs, physics_dt=0.005)
    for k in range(20):
        ev(qt[k], q[k], qd[k])
        ref(qt[k], q[k], qd[k])
    ev.reset(np.array([False, True, False]))  # a boolean mask works as well as [1]
    fresh = ActuatorNetEvaluator(path, num_envs=envs, physics_dt=0.005)
    for k in range(20, 40):
        a, b, c = ev(qt[k], q[k], qd[k]), ref(qt[k], q[k], qd[k]), fresh(qt[k], q[k], qd[k])
        np.testing.assert_array_equal(a[[0, 2]], b[[0, 2]])  # untouched envs keep their past
        np.testing.assert_array_equal(a[1], c[1])  # env 1 starts afresh
        if k == 20:
            assert not np.allclose(a[1], b[1])


@pytest.mark.parametrize("warm", [True, False])
def test_reset_fills_history_with_given_state(shared, warm):
    path, model = shared
    ev = ActuatorNetEvaluator(path, num_envs=2, physics_dt=0.005)
    qt, q, qd = _signals(5, 2, 3, seed=3)
    for k in range(5 if warm else 0):  # cold: the explicit state replaces the pending fill
        ev(qt[k], q[k], qd[k])
    e0, v0 = np.full((1, 3), 0.1), np.full((1, 3), -0.5)
    ev.reset([0], q_target=e0, q=np.zeros((1, 3)), qd=v0)
    # a different state now: the history still holds the reset state at t - h and t - 2h
    e1 = np.full((1, 3), -0.2)
    tau = ev(np.vstack([e1, qt[4, 1:]]), np.vstack([np.zeros((1, 3)), q[4, 1:]]),
             np.vstack([v0, qd[4, 1:]]))
    x = np.concatenate([np.full((1, 3, 3), 0.1), np.full((1, 3, 3), -0.5)], -1)
    x[..., 0] = -0.2
    with torch.no_grad():
        want = model(torch.tensor(x, dtype=torch.float32)).numpy()[0]
    np.testing.assert_allclose(tau[0], want, atol=1e-5)  # float32, folded vs unfolded: ulps


def test_numpy_and_torch_inputs(shared):
    path, _ = shared
    qt, q, qd = _signals(3, 5, 3, seed=4)
    a = ActuatorNetEvaluator(path, num_envs=5, physics_dt=0.005)
    b = ActuatorNetEvaluator(path, num_envs=5, physics_dt=0.005)
    for k in range(3):
        tn = a(qt[k], q[k], qd[k])
        tt = b(*(torch.tensor(x, dtype=torch.float32) for x in (qt[k], q[k], qd[k])))
    assert isinstance(tn, np.ndarray) and tn.dtype == np.float64 and tn.shape == (5, 3)
    assert torch.is_tensor(tt) and tt.shape == (5, 3)
    np.testing.assert_allclose(tn, tt.numpy(), atol=1e-5)  # same shapes; inputs cast alike
    with pytest.raises(ValueError, match=r"\(5, 3\)"):
        a(qt[0][:4], q[0][:4], qd[0][:4])


def test_joint_mapping(shared, typed):
    # a single-type network drives any joints; a typed one only its own (any order)
    ev = ActuatorNetEvaluator(shared[0], num_envs=2, physics_dt=0.005, joint_names=list("abcdefgh"))
    assert ev(np.ones((2, 8)), np.zeros((2, 8)), np.zeros((2, 8))).shape == (2, 8)
    names = ["pendulum_2", "pendulum_0"]
    ev = ActuatorNetEvaluator(typed[0], num_envs=1, physics_dt=0.005, joint_names=names)
    full = ActuatorNetEvaluator(typed[0], num_envs=1, physics_dt=0.005)
    x = np.array([[0.2, -0.1, 0.3]])
    # 2 joints against 3: matmuls of other shapes, whose BLAS kernel (per CPU and shape)
    # may sum in another order: float32 torques a few ulps apart (|tau| ~ 5 N m, ulp 5e-7;
    # measured 1 ulp); 1e-5 is ~20 ulps, a joint mapped to the wrong type: 0.6 N m
    np.testing.assert_allclose(ev(x[:, [2, 0]], 0 * x[:, :2], 0 * x[:, :2]),
                               full(x, 0 * x, 0 * x)[:, [2, 0]], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="actuator types"):
        ActuatorNetEvaluator(typed[0], num_envs=1, physics_dt=0.005, joint_names=["x"])
    with pytest.raises(ValueError, match="shorter than the physics period"):
        ActuatorNetEvaluator(shared[0], num_envs=1, physics_dt=0.02)


@pytest.mark.parametrize("physics_dt", [0.005, 0.004])
@pytest.mark.parametrize("which", ["shared", "typed", "linear", "lags5", "lagged"])
def test_numpy_twin_matches_the_evaluator(physics_dt, which, request):
    """The numpy evaluator (used by the simulator's worker threads) gives the torch
    evaluator's torques, through integer and interpolated lags and both reset forms."""
    path, _ = request.getfixturevalue(which)
    steps, envs, nj = 40, 4, 3
    qt, q, qd = _signals(steps, envs, nj, seed=2)
    ev = ActuatorNetEvaluator(path, num_envs=envs, physics_dt=physics_dt)
    tw = NumpyActuatorNet.from_evaluator(ev, envs)
    for k in range(steps):
        if k == 15:
            ev.reset([1, 3])
            tw.reset(np.array([False, True, False, True]))
        if k == 25:
            ev.reset([0], qt[k, :1], q[k, :1], qd[k, :1])
            tw.reset([0], qt[k, :1], q[k, :1], qd[k, :1])
        want = ev(qt[k], q[k], qd[k])
        args = (x.astype(np.float32) for x in (qt[k], q[k], qd[k]))
        # numpy's BLAS (OpenBLAS) against torch's (MKL) on the same float32 weights: sums in
        # another order, a few ulps of the torque (measured 1.9e-6 N m)
        np.testing.assert_allclose(tw(*args), want, atol=2e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"\(4, 3\)"):
        tw(qt[0][:2], q[0][:2], qd[0][:2])


@pytest.fixture(scope="module")
def latent_pair(tmp_path_factory):
    """Two networks on the same log of pendulums behind a 30 ms bus, one per input layout
    (``model.error_reference``): past targets against the position now, and each lag's own
    error (the former layout)."""
    from actuator_net.artifacts import checkpoint
    from actuator_net.config import ActuatorNetConfig, ModelConfig, TrainConfig
    from actuator_net.importers import from_robot_log
    from actuator_net.synthetic import pendulum_log
    from actuator_net.train import train

    series = [from_robot_log(pendulum_log(seconds=20.0, num_joints=2, seed=3, tau_max=40.0,
                                          latency=0.03))]
    out = {}
    for ref in ("now", "lag"):
        cfg = ActuatorNetConfig(model=ModelConfig(history_spacing=0.01, num_lags=5,
                                                  error_reference=ref),
                                train=TrainConfig(max_steps=400, progress=False))
        path = tmp_path_factory.mktemp(f"actuator_{ref}") / "actuator.pt"
        torch.save(checkpoint(train(series, cfg)), path)
        out[ref] = path
    return out


def test_a_struck_joint_is_answered_at_once_not_a_latency_late(latent_pair):
    """A driver behind a bus applies old targets to the joint's present position: pushed
    0.1 rad aside with its target held, the joint meets the driver's stiffness at once
    (kp 0.1 = 2 N m).  The network whose inputs take past targets against the position now
    answers in the next step (measured: 1.96 N m); with each lag's own error (the former
    layout), which a rig's moving targets teach that a new error acts only after the
    latency, it answers nothing then (0.00 N m) and the full 2 N m only once the error has
    reached its oldest lag.  The struck foot of a walking robot is this case (bench/RESULTS.md)."""
    from actuator_net.runtime import ActuatorNetEvaluator

    z, d = np.zeros((1, 2)), 0.1
    answer = {}
    for ref, path in latent_pair.items():
        ev = ActuatorNetEvaluator(path, num_envs=1, physics_dt=0.005)
        for _ in range(30):
            rest = ev(z, z, z)[0, 0]
        ev(z, np.full((1, 2), d), np.full((1, 2), d / 0.005))  # struck within one step
        steps = [ev(z, np.full((1, 2), d), z)[0, 0] - rest for _ in range(30)]
        answer[ref] = (steps[0], steps[-1])
    kp_d = 20.0 * d
    assert answer["now"][0] == pytest.approx(-kp_d, rel=0.3), answer
    assert abs(answer["lag"][0]) < 0.3 * kp_d, answer
    for ref in answer:  # both hold the driver's static stiffness once settled
        assert answer[ref][1] == pytest.approx(-kp_d, rel=0.2), answer
