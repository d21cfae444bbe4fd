"""The independent reference the capture tests compare against: plain PyTorch, one example at a time, the HF
forward with eager attention probabilities (`output_attentions`) and forward hooks on every decoder layer and
o_proj input. Shared by the capture tests of every model family."""

from __future__ import annotations

import torch

from steer_audio.capture.inputs import encode


def plain_reference(m, exs, wavs) -> list[dict[str, torch.Tensor]]:
    module = m.lm._module
    layers = module.model.language_model.layers  # the same path in every family tested (checked by hand)
    refs = []
    for ex, wav in zip(exs, wavs, strict=True):
        b = encode(m.processor, [ex], [wav], None, m.prompt, m.geom.audio_token_id)
        resid, zin, hooks = {}, {}, []
        for i, layer in enumerate(layers):
            hooks.append(
                layer.register_forward_hook(
                    lambda mod, a, o, i=i, resid=resid: resid.__setitem__(i, o[0, -1].clone())
                )
            )
            hooks.append(
                layer.self_attn.o_proj.register_forward_pre_hook(
                    lambda mod, a, i=i, zin=zin: zin.__setitem__(i, a[0][0, -1].clone())
                )
            )
        try:
            with torch.no_grad():
                inputs = {k: v for k, v in b.model_inputs.items() if k != "position_ids"}
                out = module(**inputs, output_attentions=True, use_cache=False)
        finally:
            for h in hooks:
                h.remove()
        amask = b.audio_mask[0]
        assert amask.sum() > 0, "no audio token in the decoder sequence"
        n_layers = len(layers)
        refs.append(
            {
                "resid": torch.stack([resid[i] for i in range(n_layers)]),
                "z": torch.stack([zin[i] for i in range(n_layers)]).reshape(
                    n_layers, m.geom.n_heads, m.geom.head_dim
                ),
                "mass": torch.stack([att[0, :, -1, :][:, amask].sum(-1) for att in out.attentions]),
                "logits": out.logits[0, -1, b.cand[0]],
            }
        )
    return refs
