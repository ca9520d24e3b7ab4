"""The observation and action state machine: one class for the training env and the robot.

:mod:`robot_rl.obs_spec` defines what an observation holds; between two policy calls a
controller also carries state, and this class is its one owner: the joint-state history
(with its reset fill and push order), the last action (the observation's ``prev_action``
block), the gait clock, the action clip and the action -> joint target mapping.  It is
vectorised over N rows: the training env's N envs (:class:`policies.env.LeggedEnv`), or
the robot (N = 1, :class:`deploy.runtime.OnboardController`).  It imports numpy only.

One control period, per row::

    obs = s.observe(q=..., qd=..., ...)   # first, if the row acted since its last
                                          # observation: history <- (target - q, qd)
    target = s.act(action, command)       # action clipped to +-action_clip;
                                          # target = clip(nominal + reference(phase)
                                          #   + action_scale * action, q_lo, q_hi);
                                          # the gait clock advances one control period

``reset(ids, q, qd, ...)`` starts rows afresh (an episode start; the robot's handover to
the policy): history filled with (last target - q, qd), zero action, the given phase.
"""

from __future__ import annotations

import numpy as np

from robot_rl.obs_spec import (
    JointHistory,
    ObservationSpec,
    ObservationWriter,
    action_to_target,
    advance_phase,
    projected_gravity,
)

#: policy actions are clipped to +-ACTION_CLIP (unitless) before use, in training and onboard
ACTION_CLIP = 10.0


class ObsActionState:
    """Observation history, last action, gait clock and last joint target of N rows.

    ``nominal`` (J,) is the nominal pose; joint targets are clipped to [``q_lo``, ``q_hi``]
    (J,); ``control_dt`` (s) is the policy period the gait clock advances by per action.
    """

    def __init__(self, spec: ObservationSpec, num_rows: int, nominal: np.ndarray,
                 q_lo: np.ndarray, q_hi: np.ndarray, control_dt: float,
                 action_clip: float = ACTION_CLIP):
        if not action_clip > 0:
            raise ValueError(f"action_clip must be > 0, got {action_clip}")
        self.spec = spec
        self.num_rows = num_rows
        self.nominal = np.asarray(nominal, dtype=np.float64)
        self.q_lo = np.asarray(q_lo, dtype=np.float64)
        self.q_hi = np.asarray(q_hi, dtype=np.float64)
        self.control_dt = float(control_dt)
        self.action_clip = float(action_clip)
        # the same as rows (1, J): an operation of (N, J) with (1, J) skips the broadcast
        # of a (J,) (~0.5 us a call, most of a call on the robot's one row)
        self._nominal_row, self._q_lo_row, self._q_hi_row = (
            self.nominal[None], self.q_lo[None], self.q_hi[None])
        nj = spec.num_joints
        #: joint-state history, newest first (N, H, J)
        self.history = JointHistory(num_rows, spec)
        #: the last action taken, clipped (N, J): the observation's prev_action block
        self.action = np.zeros((num_rows, nj))
        #: gait clock (rad, N) of the next action
        self.phase = np.zeros(num_rows)
        #: the last joint target (N, J)
        self.target = np.tile(self.nominal, (num_rows, 1))
        # rows that acted since their last observation (their history is one step behind):
        # True/False when all rows are alike (the usual case: no numpy call), else None and
        # per row in _acted
        self._all_acted: bool | None = False
        self._acted = np.zeros(num_rows, dtype=bool)
        self._writer = ObservationWriter(spec, num_rows)

    def reset(self, ids: np.ndarray, q: np.ndarray, qd: np.ndarray,
              phase: np.ndarray | float = 0.0, target: np.ndarray | None = None) -> None:
        """Start rows ``ids`` (distinct) afresh from the measured ``q``, ``qd`` (len(ids), J): every
        history step holds (``target`` - q, qd), ``target`` being the last joint target
        sent (default the nominal pose), the action is zero and the gait clock ``phase``
        (rad; 0 is where the trotting reference is zero)."""
        target = self.nominal if target is None else target
        self.history.reset(ids, target - q, qd)
        self.action[ids] = 0.0
        self.phase[ids] = phase
        self.target[ids] = target
        if len(ids) == self.num_rows:
            self._all_acted = False
        elif self._all_acted is not False:
            if self._all_acted:
                self._acted[:] = True
            self._acted[ids] = False
            self._all_acted = None

    def observe(self, *, q: np.ndarray, qd: np.ndarray, base_angvel_b: np.ndarray,
                command: np.ndarray, base_quat: np.ndarray | None = None,
                gravity: np.ndarray | None = None, base_linvel_b: np.ndarray | None = None,
                ids: np.ndarray | None = None) -> np.ndarray:
        """Observations (n, spec.size) float32 of all rows, or of rows ``ids``, from their
        measured state (arrays of those rows, as :func:`robot_rl.obs_spec.build_observation`
        takes them; ``gravity`` may stand for ``base_quat``).  Rows that acted since their
        last observation first push (last target - q, qd) into their history."""
        rows = slice(None) if ids is None else ids
        if self._all_acted:
            self.history.push((self.target if ids is None else self.target[ids]) - q, qd, ids)
        elif self._all_acted is None:
            acted = self._acted[rows]
            which = np.arange(self.num_rows)[rows][acted]
            self.history.push(self.target[which] - q[acted], qd[acted], which)
        if ids is None:
            self._all_acted = False
        elif self._all_acted is not False:
            if self._all_acted:
                self._acted[:] = True
            self._acted[ids] = False
            self._all_acted = None if self._acted.any() else False
        if gravity is None:
            gravity = projected_gravity(base_quat)
        if ids is None:
            action, history, phase = self.action, self.history, self.phase
        else:
            action, history, phase = self.action[ids], self.history.rows(ids), self.phase[ids]
        return self._writer(
            gravity=gravity, base_linvel_b=base_linvel_b, base_angvel_b=base_angvel_b,
            command=command, q=q, qd=qd, nominal=self._nominal_row, prev_action=action,
            history=history, phase=phase)

    def act(self, action: np.ndarray, command: np.ndarray,
            applied: np.ndarray | None = None) -> np.ndarray:
        """Take ``action`` (N, J) in every row: clipped to +-action_clip, it becomes the
        last action; returns the joint targets (N, J) and advances the gait clock.
        ``command`` (N, 3) sets the trotting stride; ``applied``, when the simulation
        delays actions, is the (earlier) action that reaches the joints now instead."""
        c = self.action_clip
        action = np.minimum(np.maximum(action, -c), c)  # np.clip's values, a third the time
        self.action = action
        if applied is not None:
            action = np.minimum(np.maximum(applied, -c), c)
        target = action_to_target(self.spec, action, self._nominal_row, self.phase, command)
        np.maximum(target, self._q_lo_row, out=target)
        np.minimum(target, self._q_hi_row, out=target)
        self.phase = advance_phase(self.spec, self.phase, self.control_dt)
        self.target = target
        self._all_acted = True
        return target
