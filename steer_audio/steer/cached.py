"""Layer-guided steering scored from the cache (no forward pass).

The intervention adds alpha * v(x) to h_t^L, the last decoder layer's output at the final position; the
logits then are lm_head(final_norm(h_t^L + alpha v)). Only the candidate tokens' lm_head rows are needed, so
every alpha, every head set and every layer is scored from cached tensors. `tests/` check that this equals a
real nnsight forward with the same intervention."""

from __future__ import annotations

import torch

from ..capture.cache import CaptureData, Readout
from ..discover.heads import HeadSet
from ..models.arch import apply_final_norm


def layer_deltas(data: CaptureData) -> torch.Tensor:
    """v_l(x) = h_t^l(x) - h_t^l(x0) for every layer: [N, L, d] float32."""
    return data["resid_a"].float() - data["resid_n"].float()


def head_guided_direction(data: CaptureData, hs: HeadSet) -> torch.Tensor:
    """v(x) = sum_{l in L_S} w_l (h_t^l(x) - h_t^l(x0))  (Eq. 5)."""
    d = layer_deltas(data)
    v = torch.zeros(d.shape[0], d.shape[2])
    for layer, w in hs.layer_weights().items():
        v += w * d[:, layer]
    return v


def single_layer_direction(data: CaptureData, layer: int) -> torch.Tensor:
    return layer_deltas(data)[:, layer]


def score(data: CaptureData, ro: Readout, v: torch.Tensor | None, alphas: list[float]) -> torch.Tensor:
    """Candidate logits [A, N, O] for h^L + alpha v; padding options are -inf."""
    h = data["resid_a"][:, -1].float()
    cand = data["cand"]
    valid = cand >= 0
    rows = ro.rows(cand.clamp(min=0))
    w = ro.w[rows]  # [N, O, d]
    out = []
    for a in alphas:
        hh = h if v is None or a == 0 else h + a * v
        n = apply_final_norm(hh, ro.norm, ro.eps, ro.kind)
        lg = torch.einsum("nd,nod->no", n, w)
        out.append(lg.masked_fill(~valid, float("-inf")))
    return torch.stack(out)
