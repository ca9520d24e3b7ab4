"""The hardware stand-in's reference actuator: richer than an ideal PD, hidden from stages.

Configured by ``StandInConfig.actuator`` (:mod:`robot_rl.standin_model`); the joint's
damping, friction and rotor inertia are the stand-in's drawn
:class:`~robot_rl.standin_model.HiddenParams`.

Reference actuator (per joint, evaluated at every physics step of length ``dt``)::

    q*_k     = target sent at time t_k - latency - jitter   (commands arrive late, in order)
    u_k      = kp_a (q*_k - q_k - o) - kd_a qd_k              driver PD on the encoder, whose
                                                               zero is off by o (hidden, per joint;
                                                               the state reads q_k + o too)
    T_k      = T_max (c + (1 - c) clip(1 - E_k / E_max, 0, 1))   I2t foldback to the
               E_k = max(0, E_{k-1} + ((tau_{k-1} / T_max)^2 - c^2) dt)   continuous torque c T_max,
               E_max = (1 - c^2) i2t_seconds                   as motor drivers protect windings
    L(qd,u)  = T_k                          if u qd <= 0      (braking)
             = T_k max(0, 1 - |qd| / w_0)   otherwise         (torque-speed line)
    u'_k     = clip(u_k, -L, L)                               current / torque saturation
    tau_k    = tau_{k-1} + (1 - exp(-dt / tc)) (u'_k - tau_{k-1})   first-order torque response
    measured = s_tau tau_k + noise                            (the log's ``tau``; s_tau: the
                                                               torque constant's error)

with ``kp_a``, ``kd_a`` the commanded gains times the driver's (hidden) calibration scales.
The transmission between motor and link is rigid by default; on the joint side (not in
the measured torque)::

    tau_joint = tau_k - b qd - f_c tanh(qd / v_s) - J_r qdd_{k-1}

with viscous damping ``b``, Coulomb friction ``f_c`` (smoothed over v_s = 0.02 rad/s) and
rotor inertia ``J_r`` (acceleration from the previous physics step; stable while J_r is
below the link inertia seen by the joint).

A *compliant* transmission (``spring_stiffness > 0``: a series-elastic actuator like
ANYmal's; or ``backlash > 0``: gearbox play with a stiff gear mesh) gives the motor its own
state (theta, omega) with the rotor inertia ``J_r`` behind the transmission::

    e        = dz(theta - q, backlash / 2)                     dead zone (0 inside the play)
    tau_t    = k e + c (omega - qd) [e != 0]                  spring (k, c) or mesh stiffness
    J_r domega/dt = tau_k - tau_t,  dtheta/dt = omega        (10 sub-steps per physics step)
    tau_joint = <tau_t> - b qd - f_c tanh(qd / v_s)

and for a series-elastic actuator the torque sensor reads the spring (``measured =
s_tau <tau_t>``), as ANYmal's does; with a rigid or backlashed gearbox it reads the current.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from robot_rl.config import ConfigError
from robot_rl.pd import pd_torque
from robot_rl.robot import RobotDescription

if TYPE_CHECKING:
    from robot_rl.standin_model import HiddenParams


@dataclass(frozen=True)
class ReferenceActuatorConfig:
    """The stand-in's actuator, richer than an ideal PD (equations in the module docstring)."""

    # command latency between sending a target and the driver using it (s)
    latency: float = 0.01
    # extra bus delay per command, uniform in [0, latency_jitter], order kept (s)
    latency_jitter: float = 0.0
    # time constant of the first-order torque (current) response (s)
    torque_time_constant: float = 0.004
    # stall torque as a multiple of the description's tau_max (-)
    tau_max_scale: float = 1.0
    # no-load speed as a multiple of the description's qd_max (-)
    noload_speed_scale: float = 1.0
    # driver proportional gain as a multiple of the description's kp (-)
    kp_scale: float = 1.0
    # driver derivative gain as a multiple of the description's kd (-)
    kd_scale: float = 1.0
    # I2t thermal protection: seconds at stall torque before the driver has folded back to
    # the continuous torque, 0 = off (s)
    i2t_seconds: float = 0.0
    # I2t: torque the driver sustains indefinitely, as a fraction of the stall torque (-)
    continuous_torque_fraction: float = 1.0
    # measured torque / true torque: the torque constant's error in the estimate (-)
    torque_sensor_scale: float = 1.0
    # series-elastic actuator: spring stiffness between motor and link, 0 = rigid (N m/rad)
    spring_stiffness: float = 0.0
    # series-elastic actuator: spring damping (N m s/rad)
    spring_damping: float = 0.0
    # gearbox play, total width (rad)
    backlash: float = 0.0
    # stiffness of the engaged gear mesh when there is play and no spring (N m/rad)
    gear_stiffness: float = 1000.0
    # damping of the engaged gear mesh (N m s/rad)
    gear_damping: float = 1.0

    def __post_init__(self) -> None:
        for f in ("latency", "latency_jitter", "torque_time_constant", "i2t_seconds",
                  "spring_stiffness", "spring_damping", "backlash", "gear_damping"):
            if not getattr(self, f) >= 0:
                raise ConfigError(f"{f} must be >= 0, got {getattr(self, f)!r}")
        for f in ("tau_max_scale", "noload_speed_scale", "kp_scale", "kd_scale",
                  "torque_sensor_scale", "gear_stiffness"):
            if not getattr(self, f) > 0:
                raise ConfigError(f"{f} must be > 0, got {getattr(self, f)!r}")
        if not 0 < self.continuous_torque_fraction <= 1:
            raise ConfigError("continuous_torque_fraction must be in (0, 1], got "
                              f"{self.continuous_torque_fraction!r}")

    @property
    def compliant(self) -> bool:
        """Motor and link are separate bodies (a spring or gearbox play between them)."""
        return self.spring_stiffness > 0 or self.backlash > 0


class ReferenceActuator:
    """Vectorised reference actuator over J joints (equations in the module docstring)."""

    #: sub-steps of the motor-side dynamics per physics step (compliant transmission only)
    SUBSTEPS = 10

    def __init__(self, cfg: ReferenceActuatorConfig, robot: RobotDescription, dt: float,
                 hidden: HiddenParams, rng: np.random.Generator | None = None):
        self.cfg, self.dt = cfg, dt
        self.set_gains(robot.array("kp"), robot.array("kd"))
        self.t_max = robot.array("tau_max") * cfg.tau_max_scale
        self.w0 = robot.array("qd_max") * cfg.noload_speed_scale
        self.alpha = 1.0 - np.exp(-dt / cfg.torque_time_constant) if cfg.torque_time_constant > 0 else 1.0
        self.i2t_budget = (1.0 - cfg.continuous_torque_fraction ** 2) * cfg.i2t_seconds
        self.delay_steps = int(round(cfg.latency / dt))
        self.jitter_steps = int(round(cfg.latency_jitter / dt))
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.hidden = hidden
        if cfg.spring_stiffness > 0:
            self.k_t, self.c_t = cfg.spring_stiffness, cfg.spring_damping
        else:
            self.k_t, self.c_t = cfg.gear_stiffness, cfg.gear_damping
        self.reset(robot.array("nominal_pose"))

    def set_gains(self, kp: np.ndarray, kd: np.ndarray) -> None:
        """Commanded PD gains; the driver applies them times its (hidden) calibration scales."""
        self.kp = np.asarray(kp, dtype=np.float64) * self.cfg.kp_scale
        self.kd = np.asarray(kd, dtype=np.float64) * self.cfg.kd_scale

    def reset(self, q_target: np.ndarray) -> None:
        """Zero torque and heat, motor at ``q_target`` (where the stand-in puts the joints)."""
        q_target = np.asarray(q_target, dtype=np.float64)
        self.tau = np.zeros_like(q_target)
        self.heat = np.zeros_like(q_target)
        self.target = q_target.copy()
        self.pending: list[tuple[int, np.ndarray]] = []  # (arrival step, target), in order
        self.k = 0
        self.qd_prev: np.ndarray | None = None
        self.theta, self.omega = q_target.copy(), np.zeros_like(q_target)

    def push_target(self, q_target: np.ndarray) -> None:
        """The latest target (held until the next one); it reaches the driver after the latency."""
        arrival = self.k + self.delay_steps + 1
        if self.jitter_steps:
            arrival += int(self.rng.integers(0, self.jitter_steps + 1))
        if self.pending:
            arrival = max(arrival, self.pending[-1][0])  # the bus keeps commands in order
        self.pending.append((arrival, np.array(q_target, dtype=np.float64)))

    def torque_limit(self) -> np.ndarray:
        """Stall torque after the I2t foldback (N m)."""
        if self.i2t_budget <= 0.0:
            return self.t_max
        c = self.cfg.continuous_torque_fraction
        return self.t_max * (c + (1.0 - c) * np.clip(1.0 - self.heat / self.i2t_budget, 0.0, 1.0))

    def step(self, q: np.ndarray, qd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance one physics step: return (measured actuator torque, torque on the joint)."""
        while self.pending and self.pending[0][0] <= self.k:
            self.target = self.pending.pop(0)[1]
        self.k += 1
        cfg, h = self.cfg, self.hidden
        if self.i2t_budget > 0.0:
            c2 = self.cfg.continuous_torque_fraction ** 2
            self.heat = np.maximum(0.0, self.heat + ((self.tau / self.t_max) ** 2 - c2) * self.dt)
        t_lim = self.torque_limit()
        # the driver's PD reads the joint's encoder, zero offset included
        u = pd_torque(self.kp, self.kd, self.target - (q + h.encoder_offset), qd)
        motoring = u * qd > 0
        limit = np.where(motoring, t_lim * np.clip(1.0 - np.abs(qd) / self.w0, 0.0, 1.0), t_lim)
        u = np.clip(u, -limit, limit)
        self.tau = self.tau + self.alpha * (u - self.tau)
        friction = h.joint_damping * qd + h.joint_coulomb * np.tanh(qd / 0.02)
        if not cfg.compliant:
            qdd = np.zeros_like(qd) if self.qd_prev is None else (qd - self.qd_prev) / self.dt
            self.qd_prev = qd.copy()
            joint = self.tau - friction - h.rotor_inertia * qdd
            return cfg.torque_sensor_scale * self.tau, joint
        tau_t = self._transmission(q, qd)
        sensed = tau_t if cfg.spring_stiffness > 0 else self.tau
        return cfg.torque_sensor_scale * sensed, tau_t - friction

    def _transmission(self, q: np.ndarray, qd: np.ndarray) -> np.ndarray:
        """Integrate the motor behind the spring or gearbox play; mean transmitted torque."""
        n = self.SUBSTEPS
        hs = self.dt / n
        half_play = 0.5 * self.cfg.backlash
        j_m = np.maximum(self.hidden.rotor_inertia, 1e-5)
        total = np.zeros_like(q)
        for i in range(n):
            q_i = q + qd * (i * hs)  # the link moves on during the physics step
            d = self.theta - q_i
            e = np.sign(d) * np.maximum(np.abs(d) - half_play, 0.0)
            tau_t = self.k_t * e + self.c_t * (self.omega - qd) * (e != 0)
            self.omega = self.omega + hs * (self.tau - tau_t) / j_m
            self.theta = self.theta + hs * self.omega
            total += tau_t
        return total / n
