"""Actor-critic networks and the observation normalizer that travels with them.

:class:`ActorCritic` holds, as one ``nn.Module``:

* ``obs_normalizer`` -- :class:`EmpiricalNormalization`, running mean/var as *buffers*,
  so the statistics are part of ``state_dict()`` and of an exported ONNX graph;
* ``actor`` -- MLP from normalized observations to the Gaussian mean;
* ``log_std`` -- state-independent log standard deviation, one per action dimension;
* ``critic`` -- a separate MLP from normalized observations to the state value.

Training code feeds *normalized* observations (the runner normalizes once per step and
stores the result); :meth:`ActorCritic.act_deterministic` (also ``forward``) takes *raw*
observations, normalizes them and returns the mean action: that is the deployed policy.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robot_rl.rl.config import PolicyConfig

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def gaussian_log_prob(actions: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """Log density of a diagonal Gaussian, summed over the last dimension."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - _LOG_SQRT_2PI).sum(-1)


def gaussian_kl(mean0: Tensor, std0: Tensor, mean1: Tensor, std1: Tensor) -> Tensor:
    """``KL(N(mean0, std0) || N(mean1, std1))`` of diagonal Gaussians, summed over the last dim."""
    var0, var1 = std0.pow(2), std1.pow(2)
    kl = torch.log(std1 / std0) + (var0 + (mean0 - mean1).pow(2)) / (2.0 * var1) - 0.5
    return kl.sum(-1)


def gaussian_entropy(log_std: Tensor) -> Tensor:
    """Entropy of a diagonal Gaussian (nats), summed over the last dimension."""
    return (log_std + 0.5 + _LOG_SQRT_2PI).sum(-1)


class EmpiricalNormalization(nn.Module):
    """``clip((x - mean) / sqrt(var + eps))`` with running mean/var kept as buffers.

    Statistics are updated only by :meth:`update` (the runner calls it on each batch of
    raw observations while training); ``forward`` never changes them, so it is a pure
    function of its input and exports to ONNX as a few elementwise ops.
    """

    def __init__(self, shape: int | tuple[int, ...], eps: float = 1e-8, clip: float | None = 10.0):
        super().__init__()
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.eps, self.clip = float(eps), clip
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("var", torch.ones(shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @property
    def std(self) -> Tensor:
        """Running standard deviation (without eps)."""
        return self.var.sqrt()

    def forward(self, x: Tensor) -> Tensor:
        y = (x - self.mean) * torch.rsqrt(self.var + self.eps)
        if self.clip is not None:
            y = y.clamp(-self.clip, self.clip)
        return y

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Merge a batch ``x`` of shape ``(B, *shape)`` into the statistics (Chan et al.).

        With ``w = B / (count + B)`` and ``d = batch_mean - mean``:
        ``mean += w d`` and ``var = (1 - w) var + w batch_var + w (1 - w) d^2``.
        """
        x = x.detach().reshape(-1, *self.mean.shape)
        n = x.shape[0]
        if n == 0:
            return
        b_var, b_mean = torch.var_mean(x.to(self.mean.dtype), dim=0, correction=0)
        total = float(self.count) + n  # python scalars: no mixed-dtype tensor arithmetic
        w = n / total
        delta = b_mean - self.mean
        self.mean.add_(delta, alpha=w)
        self.var.mul_(1.0 - w).add_(b_var, alpha=w).addcmul_(delta, delta, value=w * (1.0 - w))
        self.count.fill_(total)


_ACTIVATIONS = {"tanh": torch.tanh, "elu": F.elu, "relu": torch.relu}


class MLP(nn.Module):
    """Linear layers with an activation between them (none after the last).

    The forward pass calls ``F.linear`` directly instead of going through one module
    call per layer: the rollout loop runs it once per env step on tiny batches, where
    per-module call overhead would dominate.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: tuple[int, ...],
        out_dim: int,
        activation: str,
        ortho_init: bool = True,
        out_gain: float = 1.0,
    ):
        super().__init__()
        dims = (in_dim, *hidden, out_dim)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.activation = activation
        self._act = _ACTIVATIONS[activation]
        if ortho_init:  # gain sqrt(2) on hidden layers, out_gain on the head, zero biases
            for i, m in enumerate(self.layers):
                last = i == len(self.layers) - 1
                nn.init.orthogonal_(m.weight, gain=out_gain if last else math.sqrt(2))
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        # direct dict access skips nn.Module.__getattr__ (measurable at one call per env step)
        layers = [m._parameters for m in self.layers._modules.values()]
        for p in layers[:-1]:
            x = self._act(F.linear(x, p["weight"], p["bias"]))
        return F.linear(x, layers[-1]["weight"], layers[-1]["bias"])


class FlatMLP:
    """An :class:`MLP`'s weights as views of one flat vector, with a hand-written MSE gradient.

    The value fit runs hundreds of small Adam steps per update; autograd's bookkeeping
    costs more than the arithmetic at minibatches of ~100 rows on a CPU.
    :meth:`mse_and_grad` does the forward pass and backpropagates ``mean((f(x) - y)^2)``
    by hand (about 20 tensor ops), writing the gradient into :attr:`grad`, laid out as
    ``flat`` (the order of ``mlp.parameters()``: weight, bias of each layer).  Tested
    against autograd for every activation.
    """

    def __init__(self, mlp: MLP, flat: Tensor):
        need = sum(p.numel() for p in mlp.parameters())
        if flat.numel() != need:
            raise ValueError(f"flat vector has {flat.numel()} entries, the MLP needs {need}")
        self.activation = mlp.activation
        self._act = _ACTIVATIONS[mlp.activation]
        self.flat, self.grad = flat, torch.empty_like(flat)
        self.weights, self.grads = [], []
        i = 0
        for m in mlp.layers:
            out_f, in_f = m.weight.shape
            w = slice(i, i + out_f * in_f)
            b = slice(w.stop, w.stop + out_f)
            self.weights.append((flat[w].view(out_f, in_f), flat[b]))
            self.grads.append((self.grad[w].view(out_f, in_f), self.grad[b]))
            i = b.stop

    def _scale_by_derivative(self, g: Tensor, h: Tensor) -> Tensor:
        """``g * act'(z)`` written with the activation's output ``h = act(z)``."""
        if self.activation == "tanh":
            return g * (1.0 - h.square())
        if self.activation == "elu":  # elu'(z) = 1 for z > 0, exp(z) = h + 1 otherwise
            return g * (h.clamp(max=0.0) + 1.0)
        return g * (h > 0)  # relu

    def mse_and_grad(self, x: Tensor, y: Tensor) -> Tensor:
        """``mean((f(x).squeeze(-1) - y)^2)``; its gradient w.r.t. ``flat`` goes to :attr:`grad`."""
        hs = [x]
        h = x
        for w, b in self.weights[:-1]:
            h = self._act(torch.addmm(b, h, w.t()))
            hs.append(h)
        w, b = self.weights[-1]
        d = torch.addmm(b, h, w.t()).squeeze(-1) - y
        loss = torch.dot(d, d) / d.shape[0]
        g = (d * (2.0 / d.shape[0])).unsqueeze(-1)
        for i in range(len(self.weights) - 1, -1, -1):
            gw, gb = self.grads[i]
            torch.mm(g.t(), hs[i], out=gw)
            torch.sum(g, 0, out=gb)
            if i:
                g = self._scale_by_derivative(g.mm(self.weights[i][0]), hs[i])
        return loss


class ActorCritic(nn.Module):
    """Gaussian MLP policy (state-independent log std) and a separate MLP value function."""

    def __init__(self, obs_dim: int, action_dim: int, cfg: PolicyConfig | None = None):
        super().__init__()
        cfg = cfg or PolicyConfig()
        self.cfg, self.obs_dim, self.action_dim = cfg, obs_dim, action_dim
        self.obs_normalizer = EmpiricalNormalization(obs_dim, clip=cfg.obs_clip)
        self.actor = MLP(
            obs_dim, cfg.actor_hidden, action_dim, cfg.activation, cfg.ortho_init, 0.01
        )
        self.log_std = nn.Parameter(torch.full((action_dim,), float(cfg.init_log_std)))
        self.critic = MLP(obs_dim, cfg.critic_hidden, 1, cfg.activation, cfg.ortho_init, 1.0)

    def actor_parameters(self) -> list[nn.Parameter]:
        """Parameters of the policy: actor MLP then ``log_std`` (a fixed order)."""
        return [*self.actor.parameters(), self.log_std]

    def critic_parameters(self) -> list[nn.Parameter]:
        """Parameters of the value function."""
        return list(self.critic.parameters())

    def action_std(self) -> Tensor:
        """Standard deviation per action dimension, shape ``(action_dim,)``."""
        return self.log_std.exp()

    def act(self, obs: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Sample from the policy at normalized ``obs``: ``(actions, log_prob, mean, std)``."""
        mean = self.actor(obs)
        log_std = self.log_std
        std = log_std.exp().expand_as(mean)
        noise = torch.randn_like(mean)
        actions = torch.addcmul(mean, std, noise)
        # log N(a; mean, std) with z = noise exactly
        log_prob = noise.square().sum(-1).mul(-0.5) - (
            log_std.sum() + _LOG_SQRT_2PI * mean.shape[-1]
        )
        return actions, log_prob, mean, std

    def log_prob(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """``(log pi(actions | obs), mean)`` at normalized ``obs``."""
        mean = self.actor(obs)
        return gaussian_log_prob(actions, mean, self.log_std), mean

    def entropy(self) -> Tensor:
        """Policy entropy (nats), the same for every state."""
        return gaussian_entropy(self.log_std)

    def value(self, obs: Tensor) -> Tensor:
        """State value at normalized ``obs``, shape ``(B,)``."""
        return self.critic(obs).squeeze(-1)

    def act_deterministic(self, obs_raw: Tensor) -> Tensor:
        """Mean action for *raw* observations (normalization applied): the deployed policy."""
        return self.actor(self.obs_normalizer(obs_raw))

    def forward(self, obs_raw: Tensor) -> Tensor:
        """Same as :meth:`act_deterministic` (what ONNX export traces)."""
        return self.act_deterministic(obs_raw)
