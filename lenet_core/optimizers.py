"""Optimizers that torch.optim does not hold as LeNet-5 needs them: the 1998 paper's stochastic
diagonal Levenberg-Marquardt (SDLM), and from after 2015 Lion, Muon for convolution kernels too
(with AdamW for the rest), and sharpness-aware minimization (SAM) around any base optimizer. The
registry (`lenet_core.registry`) names them; the training loop drives them through three hooks:
an optimizer with `needs_closure` gets `step(closure)`, where the closure recomputes the batch's
loss and gradients; one with `train()` and `eval()` (schedule-free) is put in evaluation mode
before every validation and test pass; one with `begin_pass(x, y, generator)` (SDLM) is called
with the training examples before every pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.func import hessian, vmap
from torch.optim._muon import _adjust_lr, _zeropower_via_newtonschulz

from .model import Subsample, TableConv2d

# Muon's defaults, as torch.optim.Muon has them (Jordan et al. 2024)
MUON_MOMENTUM = 0.95
NS_COEFFICIENTS = (3.4445, -4.775, 2.0315)
NS_STEPS = 5
NS_EPS = 1e-7


class Lion(torch.optim.Optimizer):
    """Lion (Chen et al. 2023, "Symbolic discovery of optimization algorithms"): the update is the
    sign of an interpolation of momentum and gradient, with decoupled weight decay.

        u = sign(beta1 m + (1 - beta1) g);  w <- w (1 - lr wd) - lr u;  m <- beta2 m + (1 - beta2) g
    """

    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure: Callable | None = None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                m = self.state[p].setdefault("exp_avg", torch.zeros_like(p))
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(torch.sign(m * beta1 + p.grad * (1 - beta1)), alpha=-group["lr"])
                m.mul_(beta2).add_(p.grad, alpha=1 - beta2)
        return loss


class Muon(torch.optim.Optimizer):
    """Muon on weight matrices and convolution kernels: Nesterov momentum, then the update
    orthogonalized by torch's Newton-Schulz iteration. A kernel of shape (out, in, k, k) is
    orthogonalized as its flattened (out, in*k*k) matrix. The step is scaled as torch.optim.Muon's
    "match_rms_adamw" (0.2 sqrt(max(rows, columns))), so that one learning rate serves Muon and the
    AdamW that trains the other parameters."""

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.0, momentum: float = MUON_MOMENTUM):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum))

    @torch.no_grad()
    def step(self, closure: Callable | None = None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            mu = group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                buf.mul_(mu).add_(p.grad)
                update = p.grad.add(buf, alpha=mu).reshape(len(p), -1)  # Nesterov
                ortho = _zeropower_via_newtonschulz(update, NS_COEFFICIENTS, NS_STEPS, NS_EPS)
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(ortho.view_as(p).to(p.dtype), alpha=-_adjust_lr(group["lr"], "match_rms_adamw", update.shape))
        return loss


class Both(torch.optim.Optimizer):
    """Two optimizers stepped together over disjoint parameters (Muon and AdamW): their groups
    are this one's, so a schedule that sets each group's lr reaches both."""

    def __init__(self, first: torch.optim.Optimizer, second: torch.optim.Optimizer):
        self.parts = (first, second)
        self.param_groups = first.param_groups + second.param_groups
        self.defaults, self.state = {}, {}

    def zero_grad(self, set_to_none: bool = True):
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Callable | None = None):
        loss = None if closure is None else closure()
        for part in self.parts:
            part.step()
        return loss

    def state_dict(self):
        return {"parts": [part.state_dict() for part in self.parts]}

    def load_state_dict(self, state_dict):
        for part, state in zip(self.parts, state_dict["parts"], strict=True):
            part.load_state_dict(state)
        self.param_groups = self.parts[0].param_groups + self.parts[1].param_groups  # the parts' new groups


def muon_with_adamw(model: torch.nn.Module, lr: float, weight_decay: float) -> Both:
    """Muon for the hidden layers' weight matrices and kernels; AdamW for biases, normalization
    parameters, trainable subsampling coefficients and the output layer, as in Muon's reference recipe.
    The 1998 C3 table's weights, one 5x5 kernel per connection, are orthogonalized as their
    (connections, 25) matrix."""
    output = getattr(model.classifier[-1], "weight", None)  # LeNet5's output layer (none for fixed RBF units)
    matrices = [p for p in model.parameters() if p.ndim >= 2 and p is not output]
    ids = {id(p) for p in matrices}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return Both(Muon(matrices, lr=lr, weight_decay=weight_decay),
                torch.optim.AdamW(rest, lr=lr, weight_decay=weight_decay))


class SAM(torch.optim.Optimizer):
    """Sharpness-aware minimization (Foret et al. 2021): step the base optimizer with the gradient
    taken at w + rho g / |g|, the worst nearby point to first order. Two forward and backward passes
    a step: `step(closure)` needs the closure that recomputes the batch's loss and gradients."""

    needs_closure = True

    def __init__(self, base: torch.optim.Optimizer, rho: float = 0.05):
        if rho <= 0:
            raise ValueError(f"rho={rho!r} is out of range: must be > 0")
        self.base, self.rho = base, rho
        self.param_groups, self.defaults, self.state = base.param_groups, base.defaults, base.state

    def zero_grad(self, set_to_none: bool = True):
        self.base.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Callable | None = None):
        if closure is None:
            raise ValueError("SAM needs step(closure): the closure recomputes the loss and its gradients")
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        with torch.no_grad():
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
            scale = self.rho / (norm + 1e-12)
            moves = [p.grad * scale for p in params]
            for p, e in zip(params, moves):
                p.add_(e)
        self.base.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = closure()  # the gradient at the perturbed weights
        with torch.no_grad():
            for p, e in zip(params, moves):
                p.sub_(e)
        self.base.step()
        return loss

    def state_dict(self):
        return self.base.state_dict()

    def load_state_dict(self, state_dict):
        self.base.load_state_dict(state_dict)
        self.param_groups, self.state = self.base.param_groups, self.base.state


def schedule_free_adamw(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float):
    """AdamW without a schedule (Defazio et al. 2024, the `schedulefree` package): its weights for
    evaluation are an average, so the loop calls its eval() before validating and testing."""
    import schedulefree

    return schedulefree.AdamWScheduleFree(params, lr=lr, weight_decay=weight_decay, warmup_steps=0)


def ema_decay_at(decay: float, step: int) -> float:
    """The decay of an exponential moving average at step `step` (1, 2, ...): min(decay, (1 + step) /
    (10 + step)), the warm-up of TensorFlow's ExponentialMovingAverage (num_updates). Without it a decay
    of 0.999 keeps 83% of the initial weights after 189 steps (a quick-profile run)."""
    return min(decay, (1 + step) / (10 + step))


class Averaged(torch.optim.Optimizer):
    """The run's optimizer, with an average of the weights it visits that validation and test see.

    "ema": an exponential moving average, updated after every step (a <- d a + (1 - d) w), where the
    decay d warms up to `decay` as (1 + t) / (10 + t) at step t (`ema_decay_at`), so that the
    initialization does not weigh on the average of a short run.
    "swa": stochastic weight averaging (Izmailov et al. 2018), the plain mean of the weights at the
    end of each epoch after the first `start` epochs; before that the network is evaluated as it is.
    `eval()` puts the average into the network (the loop then re-estimates batch norm's statistics
    for it) and `train()` puts the trained weights back, so training never sees the average.
    """

    averages = True

    def __init__(self, base: torch.optim.Optimizer, model: torch.nn.Module, kind: str, decay: float = 0.999,
                 start: int = 0):
        if kind not in ("ema", "swa"):
            raise ValueError(f"unknown average {kind!r}; valid: ema, swa")
        self.base, self.kind, self.decay, self.start = base, kind, decay, start
        self.param_groups, self.defaults, self.state = base.param_groups, base.defaults, base.state
        self.needs_closure = getattr(base, "needs_closure", False)
        self.weights = list(model.parameters())
        self.average = [w.detach().clone() for w in self.weights]
        self.steps, self.count, self.epochs, self.saved = 0, 0, 0, None  # count: epochs in SWA's mean

    def zero_grad(self, set_to_none: bool = True):
        self.base.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self, closure: Callable | None = None):
        loss = self.base.step(closure) if closure is not None else self.base.step()
        if self.kind == "ema":
            self.steps += 1
            decay = ema_decay_at(self.decay, self.steps)
            for a, w in zip(self.average, self.weights):
                a.lerp_(w, 1 - decay)
        return loss

    @torch.no_grad()
    def eval(self):
        self.epochs += 1
        if self.kind == "swa" and self.epochs > self.start:
            self.count += 1
            for a, w in zip(self.average, self.weights):
                a.copy_(w) if self.count == 1 else a.add_(w - a, alpha=1 / self.count)
        if self.kind == "ema" or self.count:
            self.saved = [w.detach().clone() for w in self.weights]
            for a, w in zip(self.average, self.weights):
                w.copy_(a)

    @torch.no_grad()
    def train(self):
        if self.saved is not None:
            for s, w in zip(self.saved, self.weights):
                w.copy_(s)
            self.saved = None

    @property
    def evaluating_average(self) -> bool:
        """Whether the network holds the average now (between eval() and train())."""
        return self.saved is not None

    def state_dict(self):
        return dict(base=self.base.state_dict(), average=[a.clone() for a in self.average], steps=self.steps,
                    count=self.count, epochs=self.epochs,
                    saved=None if self.saved is None else [w.clone() for w in self.saved])

    @torch.no_grad()
    def load_state_dict(self, state_dict):
        self.base.load_state_dict(state_dict["base"])
        self.param_groups, self.state = self.base.param_groups, self.base.state
        for a, b in zip(self.average, state_dict["average"], strict=True):
            a.copy_(b)
        self.steps, self.count, self.epochs = state_dict["steps"], state_dict["count"], state_dict["epochs"]
        saved = state_dict["saved"]
        self.saved = None if saved is None else [b.to(w.device).clone() for w, b in zip(self.weights, saved)]


# ---------------------------------------------------------------- the 1998 paper's optimizer

SDLM_MU = 0.02  # the paper's mu: keeps the step bounded where the curvature estimate is small
SDLM_EXAMPLES = 500  # training examples the curvature is estimated on before each pass


# The layers whose weight gradients `_squared_gradients` forms row by row.
SQUARED_GRADIENT_LAYERS = (torch.nn.Linear, torch.nn.Conv2d, TableConv2d, Subsample)


def gauss_newton_diagonal(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                          loss: Callable[..., torch.Tensor], rows_at_once: int = 2048) -> list[torch.Tensor]:
    """The diagonal of the Gauss-Newton matrix J^T H J of `loss`, averaged over the examples (x, y):
    one tensor per parameter of `model`, in the order of model.parameters().

    J is each example's Jacobian of the network's output before its last parameter-free layer (F6's
    84 units for fixed RBF outputs, whose squared distances are curvature of the loss; the scores
    for a linear output) with respect to the parameters, H the exact Hessian of the example's loss
    with respect to that output (positive semi-definite for both losses). With H = L L^T (its
    eigenvectors scaled by the square roots of its eigenvalues), diag(J^T H J) = sum_m (J^T l_m)^2:
    one backward pass per column of L, all of an example's columns in one batch of copies of it,
    and each copy's weight gradient squared layer by layer (`_squared_gradients`). The 1998 paper's
    backward pass of squared derivatives (its eqs. 25-27) approximates the same diagonal, dropping
    the off-diagonal terms layer by layer.

    The model needs `classifier[-1]` (its last layer) and `forward(x, head=False)` (the output
    before that layer); it is estimated in evaluation mode (no dropout).
    """
    last = model.classifier[-1]
    head_trained = any(True for _ in last.parameters())
    layers = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
    for m in layers:
        if not isinstance(m, SQUARED_GRADIENT_LAYERS):
            raise ValueError(f"the Gauss-Newton diagonal handles {', '.join(t.__name__ for t in SQUARED_GRADIENT_LAYERS)} "
                             f"layers; got {type(m).__name__}")

    def example_loss(z, label):
        scores = z[None] if head_trained else last(z[None])
        return loss(scores, label[None])

    total = {id(p): torch.zeros_like(p) for p in model.parameters()}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            z = model(x, head=head_trained)
        d = z.shape[1]
        values, vectors = torch.linalg.eigh(vmap(hessian(example_loss))(z, y))
        columns = (vectors * values.clamp(min=0).sqrt()[:, None, :]).transpose(1, 2)  # [b, m]: column m of L_b
        step = max(1, rows_at_once // d)
        for i in range(0, len(x), step):
            copies = x[i:i + step].repeat_interleave(d, 0)  # copy m of example b: row b * d + m
            for p, squared in _squared_gradients(model, layers, copies, head_trained,
                                                 columns[i:i + step].reshape(-1, d)):
                total[id(p)] += squared
    finally:
        model.train(was_training)
    return [total[id(p)] / len(x) for p in model.parameters()]


def _squared_gradients(model, layers, rows: torch.Tensor, head: bool, tangents: torch.Tensor):
    """(parameter, sum over the rows of the square of that row's own gradient of tangent . output):
    each row's input and output gradient at every layer come from one batched forward and backward
    pass; the rows' weight gradients are then formed row by row and squared, never summed first."""
    seen: dict = {}
    hooks = [m.register_forward_hook(lambda m, inputs, out: seen.__setitem__(m, (inputs[0], out))) for m in layers]
    try:
        with torch.enable_grad():
            out = model(rows, head=head)
            grads = torch.autograd.grad(out, [seen[m][1] for m in layers], grad_outputs=tangents)
    finally:
        for h in hooks:
            h.remove()
    for m, g in zip(layers, grads):
        a = seen[m][0].detach()
        n = len(a)
        if isinstance(m, torch.nn.Linear):
            yield m.weight, g.pow(2).T @ a.pow(2)
            if m.bias is not None:
                yield m.bias, g.pow(2).sum(0)
        elif isinstance(m, Subsample):
            pooled = torch.nn.functional.avg_pool2d(a, 2)
            yield m.coefficient, (g * pooled).sum((2, 3)).pow(2).sum(0)
            yield m.bias, g.sum((2, 3)).pow(2).sum(0)
        else:  # a convolution: each row's kernel gradient from its unfolded input
            k = m.kernel_size if isinstance(m, TableConv2d) else m.kernel_size[0]
            patches = torch.nn.functional.unfold(a, k)  # n x (in * k * k) x positions
            per_row = torch.bmm(g.flatten(2), patches.transpose(1, 2))  # n x out x (in * k * k)
            if isinstance(m, TableConv2d):
                per_row = per_row.reshape(n, -1, k * k)[:, m.rows]
            yield m.weight, per_row.pow(2).sum(0).view_as(m.weight)
            if m.bias is not None:
                yield m.bias, g.sum((2, 3)).pow(2).sum(0)


class SDLM(torch.optim.Optimizer):
    """Stochastic diagonal Levenberg-Marquardt (LeCun et al. 1998, section III-B and Appendix C):
    each weight w_k moves by - eta / (mu + h_kk) * dE/dw_k, where eta is the global rate (the group's
    lr, which the schedule sets) and h_kk the Gauss-Newton estimate of the second derivative of the
    loss in w_k (`gauss_newton_diagonal`), re-estimated on SDLM_EXAMPLES training examples drawn at
    random before each pass and held for the pass. Weight decay, if any, adds wd * w to the gradient.
    Until the first estimate h_kk = 0 (the step is eta / mu)."""

    def __init__(self, model: torch.nn.Module, loss: Callable[..., torch.Tensor],
                 lr: float = 5e-4, weight_decay: float = 0.0, mu: float = SDLM_MU, examples: int = SDLM_EXAMPLES):
        if mu <= 0:
            raise ValueError(f"mu={mu!r} is out of range: must be > 0")
        super().__init__(model.parameters(), dict(lr=lr, weight_decay=weight_decay))
        self.model, self.loss, self.mu, self.examples = model, loss, mu, examples
        self.params = [p for group in self.param_groups for p in group["params"]]
        self.curvature = [torch.zeros_like(p) for p in self.params]
        self.scale = [torch.full_like(p, 1 / mu) for p in self.params]

    def begin_pass(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Re-estimate every h_kk on `examples` of (x, y) drawn at random (all of them if fewer)."""
        pick = torch.randperm(len(x), device=x.device, generator=generator)[:self.examples]
        self.curvature = gauss_newton_diagonal(self.model, x[pick], y[pick], self.loss)
        self.scale = [1 / (self.mu + h) for h in self.curvature]

    def effective_rates(self) -> torch.Tensor:
        """Every weight's present step size eta / (mu + h_kk), as one vector."""
        return torch.cat([s.flatten() for s in self.scale]) * self.param_groups[0]["lr"]

    @torch.no_grad()
    def step(self, closure: Callable | None = None):
        loss = None if closure is None else closure()
        group = self.param_groups[0]  # one group: every parameter of the model, each with a gradient
        grads = [p.grad for p in self.params]
        if group["weight_decay"]:
            grads = torch._foreach_add(grads, self.params, alpha=group["weight_decay"])
        torch._foreach_addcmul_(self.params, grads, self.scale, value=-group["lr"])
        return loss
