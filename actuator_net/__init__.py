"""Stage 2: learn the actuator's dynamics (position targets -> torque) from logs.

Hwangbo et al. (2019): an MLP from joint position error and velocity at t, t - h, t - 2h
to torque, 3 hidden layers of 32 softsign units, one network per actuator type.  Here the
history holds as many steps as the logged actuator's response needs (at least those 3),
and each past target is taken against the joint's position now (:mod:`actuator_net.data`
says why: a driver behind a bus answers a struck joint at once).

Modules (data flows top to bottom):

- :mod:`actuator_net.importers` robot_rl logs, the ANYmal SEA pair, per-joint CSVs ->
  :class:`~actuator_net.data.ActuatorSeries` (the one internal format)
- :mod:`actuator_net.data`      history windows (stride or interpolation), time split
- :mod:`actuator_net.response`  how long the actuator takes to respond; the history length
- :mod:`actuator_net.model`     :class:`~actuator_net.model.ActuatorMLP` (scaling inside)
- :mod:`actuator_net.train`     :func:`~actuator_net.train.train`, metrics vs PD baselines
- :mod:`actuator_net.artifacts` ``actuator.pt`` / ``actuator.onnx`` / ``metrics.json``
- :mod:`actuator_net.runtime`   :class:`~actuator_net.runtime.ActuatorNetEvaluator`, the
  batched per-env evaluator for the simulator
- :mod:`actuator_net.mujoco_plugin` the same network as a MuJoCo actuator plugin (C,
  compiled on first use), evaluated inside ``mj_step``
- :mod:`actuator_net.cli`       ``robot-rl actuator train``

Nothing heavy is imported here.
"""
