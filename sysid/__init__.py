"""Stage 1: system identification of the MuJoCo model from robot logs.

    robot-rl sysid --logs <run>/logs/suspended.npz <run>/logs/ground.npz --robot a1 \\
                   --out <run>/sysid [--holdout held.npz] [--set key=value ...]

writes ``<run>/sysid/params.json`` (atomically, last: a failed run writes none) and PNG
plots (held-out replay, parameters, foot friction).  For every parameter (names in
:mod:`sysid.model`) params.json gives its nominal (URDF) value, fitted value, standard
deviation, identifiable flag with a reason when not, randomization range and physical
bounds, unit, and how it maps onto the MuJoCo model; :func:`sysid.apply.apply_params` is
that mapping, the one the policy stage and evaluation call.

Method, and why:

* Joints and legs (:mod:`sysid.joints`), suspended logs: armature, viscous damping and
  Coulomb friction enter the joint torque linearly, and with the base fixed a leg's inverse
  dynamics scales exactly with a common scale of its masses and inertias, so MuJoCo's
  ``mj_inverse`` on the logged motion gives a linear regressor: one least-squares problem per
  leg, no simulation, no local minima, and a covariance to go with it.  Each joint's encoder
  zero offset joins it to first order (the gravity torque's slope dID/dq times the offset);
  offsets above 0.02 rad are refined by a second fit about the corrected angles.
* The encoder offsets are taken off every other log's angles before it is used: the
  ground fit works on the legs' true kinematics.
* Trunk mass/COM and foot friction (:mod:`sysid.ground`), ground logs: contact forces are
  eliminated through each leg's joint equations (3 joints, 3 force components), leaving the
  6 floating-base equations, linear in the payload's mass and first moment; foot friction is
  the force ratio of slipping feet.  Both need the legs from the first step.
* The floor's compliance (:func:`sysid.ground.fit_floor`), ground logs: a loaded foot's
  height against its normal force and vertical speed gives a spring and damper per foot, or
  "rigid" when the feet do not sink with their load.  In ``params.json``
  (``ground.floor``); a compliant floor becomes a sprung pad under each foot of the
  identified simulator (:class:`robot_rl.sim_mujoco.FloorPad`).
* Standard deviations: moving-block bootstrap (statistical) + spread over analysis variants
  (systematic) + a type-B model-adequacy floor, in quadrature; see :mod:`sysid.params`.
* Validation (:mod:`sysid.replay`): open-loop replay of held-out logged torques in MuJoCo
  over 0.25 s windows, identified vs nominal model.

Ground logs must show the robot standing on its feet: samples where other geometry is near
the floor are dropped, and with too few left the trunk is reported as not identifiable.
With the robots' default (soft) gains an open-loop ground experiment leaves A1 resting on
its thighs, so ``robot-rl collect --experiment ground`` raises the joint gains (kp x4, kd x2)
through ``RobotInterface.set_gains`` (the gains do not enter identification: it uses the
measured torques).
"""
