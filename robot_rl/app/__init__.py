"""Orchestration: the ``robot-rl`` command, the pipeline and the rounds loop.

This subpackage stands above all four stages.  It is the only part of ``robot_rl`` that
imports stage packages (``sysid``, ``actuator_net``, ``policies``, ``deploy``); the rest of
``robot_rl`` is the shared core every stage may use, and no stage imports this package.
``tests/test_layering.py`` holds both rules.

    cli.py        ``robot-rl <command>``: dispatch to each stage's ``main(argv)``, one
                  user-error handler
    pipeline.py   ``robot-rl pipeline``: the stages in order, each through its own CLI
    rounds.py     ``robot-rl pipeline --rounds N``: deploy, log, re-identify, retrain
"""
