"""Reference actuator models the network is measured against.

ideal PD       tau = kp (q_target - q) - kd qd, with the joint controller's gains
best-fit PD    tau = kp e - kd qd + b, kp, kd, b fitted per joint by least squares on the
               training part (everything before the validation part)
"""

from __future__ import annotations

import numpy as np

from robot_rl.pd import pd_torque


def ideal_pd(pos_error: np.ndarray, vel: np.ndarray, kp: np.ndarray, kd: np.ndarray) -> np.ndarray:
    """Ideal actuator torque (N m), broadcasting over leading axes."""
    return pd_torque(kp, kd, pos_error, vel)


def fit_pd(pos_error: np.ndarray, vel: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Least-squares (kp, kd, bias) per joint from (N, J) arrays; returns (J, 3)."""
    out = np.zeros((tau.shape[1], 3))
    for j in range(tau.shape[1]):
        a = np.stack([pos_error[:, j], -vel[:, j], np.ones(len(tau))], axis=1)
        out[j] = np.linalg.lstsq(a, tau[:, j], rcond=None)[0]
    return out


def apply_pd(params: np.ndarray, pos_error: np.ndarray, vel: np.ndarray) -> np.ndarray:
    """Torque of fitted PD ``params`` (J, 3) on (N, J) inputs."""
    return params[:, 0] * pos_error - params[:, 1] * vel + params[:, 2]


def rmse(pred: np.ndarray, true: np.ndarray) -> tuple[float, np.ndarray]:
    """(overall, per joint) root-mean-square error of (N, J) arrays."""
    err = (np.asarray(pred, dtype=np.float64) - true) ** 2
    return float(np.sqrt(err.mean())), np.sqrt(err.mean(axis=0))
