"""Integrated Gradients (Captum) on the fine-tuned network, over every modality at once.

The network is differentiated from its encoders' continuous inputs (:meth:`HoneNet.embed`): token
embeddings for text, standardised values and missing flags for numeric columns, category
embeddings, image pixels. The reference input is what the network sees when it knows nothing of
a row: every text token but the special ones replaced by ``[PAD]``, numeric values at their
training mean (not missing), categories in the unknown bucket, images at the mean colour. What is
explained is the **log-odds** of the explained class, ``logit_k - logsumexp(other logits)``: a
saturated softmax would give attributions near zero (STACK.md G9). For regression it is the
predicted value, in the target's units.

Completeness: the attributions of a row add up to ``F(row) - F(reference)`` up to Captum's
convergence delta, which is returned per row. ``steps="auto"`` integrates every row with 16
Gauss-Legendre steps, then again with twice as many (up to 256) only the rows whose delta is not
within 5 % of their gap (or 0.02).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F

from hone.features.pipeline import Preprocessor
from hone.models.build import HoneNet
from hone.models.precision import autocast

STEPS = (16, 32, 64, 128, 256)
REL_TOL, ABS_TOL = 0.05, 0.02  # auto steps: |delta| <= max(REL_TOL * |F(x) - F(ref)|, ABS_TOL) for every row
TOKENS_PER_PASS = 8192  # text: scaled inputs per Captum forward pass, in tokens
IMAGE_GRID = 32  # image attribution maps are sum-pooled to at most 32 x 32 cells


@dataclass
class NetworkAttribution:
    """One batch's attributions, per modality, reduced to what is shown: per token (text), per
    feature (numeric: value and flag), per column (categorical), per pixel (images)."""

    target: np.ndarray  # [B] the explained class (0 for regression)
    score: np.ndarray  # [B] F(row): log-odds of the class, or the predicted value
    reference: np.ndarray  # [B] F(reference)
    delta: np.ndarray  # [B] Captum's convergence delta: sum(attributions) - (score - reference)
    steps: np.ndarray  # [B] integration steps used per row
    parts: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # modality -> key -> array


def margins(out: torch.Tensor) -> torch.Tensor:
    """``[B, K]`` logits -> ``[B, K]`` one-against-the-rest log-odds (``[B, 1]`` regression output as is)."""
    if out.shape[1] == 1:
        return out
    k = out.shape[1]
    others = (
        out.unsqueeze(1).expand(-1, k, -1).masked_fill(torch.eye(k, dtype=torch.bool, device=out.device), float("-inf"))
    )
    return out - torch.logsumexp(others, dim=2)


def reference_inputs(pre: Preprocessor, inputs: dict[str, Any]) -> dict[str, Any]:
    """The reference the attributions are measured from, in the network's input space (each
    modality's :meth:`~hone.features.base.FeaturePreprocessor.reference`)."""
    return {name: pre.modalities[name].reference(x) for name, x in inputs.items()}


class NetworkExplainer:
    """Integrated Gradients for a network and its preprocessor."""

    def __init__(self, net: HoneNet, pre: Preprocessor, *, precision: str = "fp32", steps: int | str = "auto",
                 device: torch.device | None = None) -> None:
        self.net, self.pre, self.precision = net, pre, precision
        self.device = device or next(net.parameters()).device
        self.auto = steps == "auto"
        self.steps = STEPS[0] if self.auto else int(steps)  # where each row starts
        self.regression = pre.schema.task == "regression"

    def _flat(self, embedded: dict[str, tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]
              ) -> tuple[list[tuple[str, str]], list[torch.Tensor], list[tuple[str, str]], list[torch.Tensor]]:
        keys, tensors, aux_keys, aux = [], [], [], []
        for mod, (parts, extra) in embedded.items():
            for k, t in parts.items():
                keys.append((mod, k))
                tensors.append(t.detach().float())
            for k, t in extra.items():
                aux_keys.append((mod, k))
                aux.append(t)
        return keys, tensors, aux_keys, aux

    def attribute(self, batch: pa.Table, target: np.ndarray | None = None) -> NetworkAttribution:
        """Attributions for ``batch`` of the class ``target`` per row (default: the network's own argmax)."""
        from captum.attr import IntegratedGradients

        net, was = self.net, self.net.training
        net.eval()
        try:
            inputs = self.pre.inputs(batch, self.device)
            with torch.no_grad(), autocast(self.precision, self.device):
                emb, ref_emb = net.embed(inputs), net.embed(reference_inputs(self.pre, inputs))
                out = margins(net.forward_embedded(*_split(emb)).float())
                ref_out = margins(net.forward_embedded(*_split(ref_emb)).float())
            if target is None:
                target = np.zeros(batch.num_rows, dtype=np.int64) if self.regression else out.argmax(1).cpu().numpy()
            tgt = torch.as_tensor(target, dtype=torch.long, device=self.device)
            rows = torch.arange(len(tgt), device=self.device)
            score, ref_score = out[rows, tgt], ref_out[rows, tgt]
            keys, xs, aux_keys, aux = self._flat(emb)
            _, bs, _, _ = self._flat(ref_emb)
            n_x = len(xs)

            def forward(*tensors: torch.Tensor) -> torch.Tensor:
                parts: dict[str, dict[str, torch.Tensor]] = {m: {} for m in net.encoders}
                extra: dict[str, dict[str, torch.Tensor]] = {m: {} for m in net.encoders}
                for (m, k), t in zip(keys, tensors[:n_x]):
                    parts[m][k] = t
                for (m, k), t in zip(aux_keys, tensors[n_x:]):
                    extra[m][k] = t
                return margins(net.forward_embedded(parts, extra).float())

            ig = IntegratedGradients(forward)
            attrs = [torch.zeros_like(x) for x in xs]
            delta = torch.zeros(len(tgt), device=self.device)
            used = np.zeros(len(tgt), dtype=np.int64)
            tol = torch.clamp(REL_TOL * (score - ref_score).abs(), min=ABS_TOL)
            todo, steps = torch.arange(len(tgt), device=self.device), self.steps
            while len(todo):  # auto: the rows whose delta is still too large go again with twice the steps
                sel = [x[todo] for x in xs]
                with autocast(self.precision, self.device):
                    a, d = ig.attribute(tuple(sel), baselines=tuple(b[todo] for b in bs), target=tgt[todo],
                                        additional_forward_args=tuple(t[todo] for t in aux) or None, n_steps=steps,
                                        method="gausslegendre", internal_batch_size=self._per_pass(sel),
                                        return_convergence_delta=True)
                for full, part in zip(attrs, a):
                    full[todo] = part.detach().float()
                delta[todo] = d.detach().float()
                used[todo.cpu().numpy()] = steps
                if not self.auto or steps >= STEPS[-1]:
                    break
                todo = todo[d.abs() > tol[todo]]
                steps = next(s for s in STEPS if s > steps)
        finally:
            net.train(was)
        scale = self.pre.target_std if self.regression else 1.0
        shift = self.pre.target_mean if self.regression else 0.0
        parts: dict[str, dict[str, np.ndarray]] = {}
        for (m, k), a in zip(keys, attrs):
            parts.setdefault(m, {})[k] = _reduce(a) * scale
        return NetworkAttribution(np.asarray(target), _np(score) * scale + shift, _np(ref_score) * scale + shift,
                                  _np(delta) * scale, used, parts)

    def _per_pass(self, xs: list[torch.Tensor]) -> int:
        """Scaled inputs per forward pass (Captum's ``internal_batch_size``): bounded in tokens for text."""
        longest = max((t.shape[1] for t in xs if t.ndim == 3), default=0)
        if longest:
            return max(xs[0].shape[0], TOKENS_PER_PASS // longest)
        if any(t.ndim == 4 for t in xs):
            return max(xs[0].shape[0], 64)
        return max(xs[0].shape[0], 4096)


def _split(embedded: dict[str, tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]
           ) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, dict[str, torch.Tensor]]]:
    return {m: p for m, (p, _) in embedded.items()}, {m: a for m, (_, a) in embedded.items()}


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy().astype(np.float64)


def _reduce(a: torch.Tensor) -> np.ndarray:
    """Attributions of an encoder input summed over its vector axis: per token ``[B, T]``, per value
    ``[B, W]``, per category ``[B]``; pixels ``[B, 3, S, S]`` over their channels, sum-pooled to
    at most ``IMAGE_GRID`` cells a side ``[B, g, g]``."""
    if a.ndim == 4:
        m = a.sum(1, keepdim=True)
        side = m.shape[-1]
        g = next(d for d in range(min(side, IMAGE_GRID), 0, -1) if side % d == 0)  # cells of whole pixels: sums kept
        if g < IMAGE_GRID // 4 < side:
            g = IMAGE_GRID
            m = F.adaptive_avg_pool2d(m, g) * (side * side / (g * g))
        elif g != side:
            k = side // g
            m = F.avg_pool2d(m, k) * (k * k)
        return _np(m[:, 0])
    return _np(a.sum(-1))
