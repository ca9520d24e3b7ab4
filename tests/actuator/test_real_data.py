
"""Targets on real actuator data (issue 5): ANYmal SEA and the 50 Hz humanoid ankle.

Fixed seeds, CPU, deterministic.  ANYmal uses a history spacing of 0.0075 s (3 samples at
400 Hz): with the paper's 0.01 s the default training reaches 0.46 to 0.61 N m over six
seeds (mean 0.54, so the 0.55 target holds for only some seeds); 0.0075 s gives 0.39 to
0.50 (mean 0.44); seed 0 here gave 0.436 N m (bench/RESULTS.md), and 0.362 since the
model has a linear term (issue 20; ankle: every joint lower too).  The number of lags is
now chosen from the logs (actuator_net.response): 4 at 0.0075 s (the response ends
17.5 ms back), seed 0 0.418 N m, seeds 0-5 mean 0.409 (0.355-0.454; 3 lags: 0.410,
0.362-0.465); the ankle keeps 3 (same figures).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from actuator_net.config import ActuatorNetConfig, ModelConfig, TrainConfig
from actuator_net.importers import ANKLE_CSV, read_anymal, read_csv
from actuator_net.train import train

# shared/ lies beside the repository (CI clones it there too); ROBOT_RL_SHARED overrides
_SHARED = Path(os.environ.get("ROBOT_RL_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
DATA = _SHARED / "data" / "real_actuator_logs"
ANYMAL = DATA / "anymal_sea_LH_KFE_input.f64"
ANKLE = DATA / "humanoid_ankle_4joints_50hz.csv"


@pytest.mark.skipif(not ANYMAL.exists(), reason="real ANYmal data not on this machine")
def test_anymal_held_out_rmse():
    cfg = ActuatorNetConfig(model=ModelConfig(history_spacing=0.0075),
                            train=TrainConfig(seed=0, progress=False))
    r = train([read_anymal(ANYMAL)], cfg)
    m = r.metrics
    # the baseline from the raw files (shared/data/README.md): sample-major windows of 16
    # steps, newest last; velocity at value 15, position error at 31; the target is the
    # measured torque of the newest step. Ideal PD with the paper's gains kp = 50 N m/rad,
    # kd = 0.1 N m s/rad on the last 20 % of the samples (about 5.39 N m).
    x = np.fromfile(ANYMAL, "<f8").reshape(-1, 48)
    y = np.fromfile(ANYMAL.with_name("anymal_sea_LH_KFE_target.f64"), "<f8")
    held_out = len(y) - int(np.floor(0.8 * len(y)))
    v = slice(len(y) - held_out, None)
    ideal = float(np.sqrt(np.mean((50.0 * x[v, 31] - 0.1 * x[v, 15] - y[v]) ** 2)))
    assert m["samples"]["validation"] == held_out
    assert m["rmse_nm"]["ideal_pd"]["overall"] == pytest.approx(ideal, rel=1e-6)
    assert m["rmse_nm"]["network"]["overall"] <= 0.55


@pytest.mark.skipif(not ANKLE.exists(), reason="real ankle data not on this machine")
def test_ankle_beats_best_fit_pd_on_every_joint():
    series = read_csv(ANKLE, ANKLE_CSV)
    assert series.sample_period() == 0.02
    cfg = ActuatorNetConfig(model=ModelConfig(history_spacing=0.02),
                            train=TrainConfig(seed=0, batch_size=512, max_steps=600,
                                              progress=False))
    r = train([series], cfg)
    rm = r.metrics["rmse_nm"]
    net = np.array(list(rm["network"]["per_joint"].values()))
    fit = np.array(list(rm["best_fit_pd"]["per_joint"].values()))
    assert rm["ideal_pd"] is None  # gains unknown
    assert r.metrics["joint_types"]["types"] == ["ankle_0", "ankle_1", "ankle_2", "ankle_3"]
    np.testing.assert_array_less(net, fit)
