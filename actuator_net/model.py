"""The actuator network: one softsign MLP per actuator type, input/output scaling inside.

Hwangbo et al. (2019): input = joint position error and joint velocity at t, t - h,
t - 2h (6 numbers per joint), 3 hidden layers of 32 softsign units, output = torque; one
network shared by all joints of one actuator type.  Joints of different types (other
gains or limits) get their own weights; all types are evaluated in one batched matmul per
layer (no loop over joints or types).  Scaling (per type) lives in buffers, so the saved
state dict and the ONNX graph take raw SI inputs and return N m.
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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
        return out * self.out_std[jt] + self.out_mean[jt]

    def forward_normalized(self, x: torch.Tensor) -> torch.Tensor:
        """Output in normalized units (training loss), same input as :meth:`forward`."""
        jt = self.joint_type
        return (self.forward(x) - self.out_mean[jt]) / self.out_std[jt]
