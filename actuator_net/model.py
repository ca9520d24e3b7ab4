"""The actuator network: one softsign MLP per actuator type, input/output scaling inside.

Hwangbo et al. (2019): input = joint position error and joint velocity at t, t - h,
t - 2h (6 numbers per joint), 3 hidden layers of 32 softsign units, output = torque; one
network shared by all joints of one actuator type.  Here L history steps (2L numbers per
joint), L chosen from the logs (:mod:`actuator_net.response`), the position numbers being
past targets against the position now (``actuator_net.data.INPUT_LAYOUT``).  Joints of different types (other
gains or limits) get their own weights; all types are evaluated in one batched matmul per
layer (no loop over joints or types).  Scaling (per type) lives in buffers, so the saved
state dict and the ONNX graph take raw SI inputs and return N m.

Besides the MLP, each type has a linear term on the same raw inputs (``lin_w``, ``lin_b``:
buffers, fitted by least squares before the MLP is trained on what it leaves)::

    tau = x . lin_w + lin_b  +  MLP(x)

Inside the excitation of the logs the sum fits as well as an MLP alone; outside it (a
suspended rig rarely holds a large position error at low speed, a leg carrying the robot
does so all the time) the softsign MLP saturates towards what it saw, while the linear
term keeps the driver's stiffness: without it a rig-trained network gave 14 % less torque
than the actuator for a held error of 0.5 rad, and the robot sagged and fell in simulation
(issue 20).  Training keeps the term only where the fit is a driver law (positive
stiffness, no negative damping; :func:`actuator_net.train.passive_law`), else it is zero
and the MLP is the whole model, as before.  A checkpoint without the term loads with it
zero.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ActuatorMLP(nn.Module):
    """``forward(x)``: x (..., J, 2L) raw inputs (layout in :mod:`actuator_net.data`) -> (..., J) N m."""

    def __init__(self, joint_type: list[int], num_inputs: int, hidden: tuple[int, ...] = (32, 32, 32)):
        super().__init__()
        num_types = max(joint_type) + 1
        if sorted(set(joint_type)) != list(range(num_types)):
            raise ValueError(f"joint_type must use every type 0..{num_types - 1}, got {joint_type}")
        self.num_types, self.num_inputs, self.hidden = num_types, num_inputs, tuple(hidden)
        self.register_buffer("joint_type", torch.tensor(joint_type, dtype=torch.long))
        # one type per joint, in joint order: the per-type weights are the per-joint weights
        self._identity_types = list(joint_type) == list(range(len(joint_type)))
        self.register_buffer("in_mean", torch.zeros(num_types, num_inputs))
        self.register_buffer("in_std", torch.ones(num_types, num_inputs))
        self.register_buffer("out_mean", torch.zeros(num_types))
        self.register_buffer("out_std", torch.ones(num_types))
        # the linear term on the raw inputs (N m per input unit) and its offset (N m)
        self.register_buffer("lin_w", torch.zeros(num_types, num_inputs))
        self.register_buffer("lin_b", torch.zeros(num_types))
        widths = [num_inputs, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(widths[:-1], widths[1:]):
            w = torch.empty(num_types, a, b)
            bound = 1.0 / math.sqrt(a)  # as nn.Linear's default initialisation
            nn.init.uniform_(w, -bound, bound)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.empty(num_types, b).uniform_(-bound, bound)))

    @property
    def num_joints(self) -> int:
        return int(self.joint_type.shape[0])

    def set_scaling(self, in_mean: torch.Tensor, in_std: torch.Tensor, out_mean: torch.Tensor,
                    out_std: torch.Tensor) -> None:
        """Per-type input (T, 2L) and output (T,) mean and standard deviation."""
        with torch.no_grad():
            self.in_mean.copy_(in_mean)
            self.in_std.copy_(in_std)
            self.out_mean.copy_(out_mean)
            self.out_std.copy_(out_std)

    def set_linear(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Per-type linear term: weight (T, 2L) on the raw inputs, bias (T,), N m."""
        with torch.no_grad():
            self.lin_w.copy_(weight)
            self.lin_b.copy_(bias)

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        """The linear term alone: x (..., J, 2L) -> (..., J) N m."""
        jt = self.joint_type
        return (x * self.lin_w[jt]).sum(-1) + self.lin_b[jt]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._mlp(x) * self.out_std[self.joint_type] + self.out_mean[self.joint_type] \
            + self.linear(x)

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP's output in normalized units (before ``out_std``, ``out_mean``)."""
        jt = self.joint_type
        lead = x.shape[:-2]
        h = (x - self.in_mean[jt]) / self.in_std[jt]
        if self.num_types == 1:
            for k, (w, b) in enumerate(zip(self.weights, self.biases)):
                h = torch.matmul(h, w[0]) + b[0]
                if k < len(self.weights) - 1:
                    h = nn.functional.softsign(h)
            out = h.squeeze(-1)
        else:
            # (J, B, d) @ (J, d, h): one batched matmul per layer over joints
            h = h.reshape(-1, self.num_joints, self.num_inputs).transpose(0, 1)
            for k, (w, b) in enumerate(zip(self.weights, self.biases)):
                if not self._identity_types:
                    w, b = w[jt], b[jt]
                h = torch.baddbmm(b.unsqueeze(1), h, w)
                if k < len(self.weights) - 1:
                    h = nn.functional.softsign(h)
            out = h.squeeze(-1).transpose(0, 1).reshape(*lead, self.num_joints)
        return out

    def forward_normalized(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP's output in normalized units (training loss: its target is the torque
        less the linear term, normalized by ``out_mean``, ``out_std``), same input as
        :meth:`forward`."""
        return self._mlp(x)
