"""Steered generation (steer/generate.py) against independent references on a tiny random Qwen2-Audio:
alpha = 0 equals HF `generate` token for token; each steering primitive equals HF `generate` with a plain
PyTorch forward hook that adds the same vector at every forward (the prompt's last position, then each new
token); the contrastive decode equals a plain uncached loop over single rows; KV-cached decoding equals
uncached decoding; a left-padded batch equals its rows one by one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from steer_audio.capture.inputs import encode
from steer_audio.capture.trace import envoys
from steer_audio.data import mmau
from steer_audio.data.audio import load_audio, negative
from steer_audio.errors import SteerAudioError
from steer_audio.steer import avs
from steer_audio.steer.generate import (
    AvsSchedule,
    Greedy,
    HeadAdd,
    LayerAdd,
    LogitContrast,
    generate,
)

N_NEW = 10


@pytest.fixture(scope="module")
def lively():
    """The tiny model with its decoder's matrices redrawn at std 0.3: at the default init (std 0.02) greedy
    decoding repeats one token forever, which would make every equality below vacuous."""
    from steer_audio.models import loaded

    m = loaded.load("tiny", device="cpu", tiny={"seed": 5})
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in m.lm._module.named_parameters():
            if p.ndim == 2 and "audio_tower" not in name and "projector" not in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return m


@pytest.fixture(scope="module")
def batch(lively, dataset_path):
    exs = mmau.load(dataset_path).examples[:4]  # clips of 0.6-1.5 s: prompts of different lengths
    wavs = [load_audio(e.audio_path) for e in exs]
    b = encode(lively.processor, exs, wavs, None, lively.prompt, lively.geom.audio_token_id)
    bn = encode(
        lively.processor,
        exs,
        wavs,
        [negative(w, "silence") for w in wavs],
        lively.prompt,
        lively.geom.audio_token_id,
    )
    return exs, b, bn


def _ev(m):
    return envoys(m.lm, m.arch, m.geom, m.name)


def _gen(m, inputs, steering=None, use_cache=True, eos=None):
    tok = m.processor.tokenizer
    eos_ids = [tok.eos_token_id] if eos is None else eos
    return generate(
        m.lm, _ev(m), m.model_inputs(inputs), steering, N_NEW, eos_ids, tok.pad_token_id, use_cache
    )


def _hf_generate(m, inputs, hooks=(), eos=None):
    """HF `generate` (greedy, KV cache) on the plain inputs, with forward hooks registered around it."""
    module = m.lm._module
    tok = m.processor.tokenizer
    handles = [reg(fn) for reg, fn in hooks]
    try:
        with torch.no_grad():
            plain = {k: v for k, v in inputs.items() if k != "position_ids"}
            out = module.generate(
                **plain,
                max_new_tokens=N_NEW,
                do_sample=False,
                eos_token_id=[tok.eos_token_id] if eos is None else eos,
                pad_token_id=tok.pad_token_id,
            )
    finally:
        for h in handles:
            h.remove()
    return out[:, inputs["input_ids"].shape[1] :]


def _layers(m):
    return m.lm._module.model.language_model.layers  # the path of Qwen2-Audio's decoder (checked by hand)


def _hidden(m):
    return int(m.lm._module.config.text_config.hidden_size)


def test_alpha_zero_equals_hf_generate(lively, batch):
    _, b, _ = batch
    want = _hf_generate(lively, b.model_inputs)
    assert len({tuple(r) for r in want.tolist()}) > 1, "rows should decode differently (vacuous test)"
    for st in (None, Greedy(), LayerAdd(torch.ones(4, _hidden(lively)), 0.0)):
        got = _gen(lively, b.model_inputs, st)
        assert torch.equal(got.tokens, want)


def test_end_of_sequence_stops_a_row_and_pads_it(lively, batch):
    _, b, _ = batch
    free = _gen(lively, b.model_inputs)
    stop = int(free.tokens[0, 2])  # a token row 0 emits at step 3: make it the end token
    got = _gen(lively, b.model_inputs, eos=[stop])
    want = _hf_generate(lively, b.model_inputs, eos=[stop])
    assert got.tokens.shape == want.shape and torch.equal(got.tokens, want)
    assert got.finished[0] and got.lengths[0] <= 3
    pad = lively.processor.tokenizer.pad_token_id
    assert (got.tokens[0, got.lengths[0] :] == pad).all()


def _last_layer_hook(m, v, alpha):
    def hook(mod, args, out):
        y = out[0] if isinstance(out, tuple) else out
        y = y.clone()
        y[:, -1] += alpha * v.to(y.dtype)
        return (y, *out[1:]) if isinstance(out, tuple) else y

    return (_layers(m)[-1].register_forward_hook, hook)


def test_layer_steering_equals_a_forward_hook_reference(lively, batch):
    _, b, _ = batch
    v = torch.randn(4, _hidden(lively), generator=torch.Generator().manual_seed(1)) * 3
    got = _gen(lively, b.model_inputs, LayerAdd(v, 2.0))
    want = _hf_generate(lively, b.model_inputs, [_last_layer_hook(lively, v, 2.0)])
    assert torch.equal(got.tokens, want)
    assert not torch.equal(got.tokens, _gen(lively, b.model_inputs).tokens), "steering changed nothing"


def _head_deltas(m, n, seed):
    h, dh = m.geom.n_heads, m.geom.head_dim
    g = torch.Generator().manual_seed(seed)
    d = {}
    for layer, head in ((1, 2), (3, 0)):
        x = torch.zeros(n, h * dh)
        x[:, head * dh : (head + 1) * dh] = torch.randn(n, dh, generator=g) * 4
        d[layer] = x
    return d


def test_head_level_steering_equals_a_pre_hook_reference(lively, batch):
    _, b, _ = batch
    deltas = _head_deltas(lively, 4, 2)
    alpha = 1.5

    def pre(layer):
        def hook(mod, args):
            x = args[0].clone()
            x[:, -1] += alpha * deltas[layer].to(x.dtype)
            return (x, *args[1:])

        return hook

    hooks = [(_layers(lively)[ly].self_attn.o_proj.register_forward_pre_hook, pre(ly)) for ly in deltas]
    got = _gen(lively, b.model_inputs, HeadAdd(deltas, alpha))
    want = _hf_generate(lively, b.model_inputs, hooks)
    assert torch.equal(got.tokens, want)
    assert not torch.equal(got.tokens, _gen(lively, b.model_inputs).tokens), "steering changed nothing"


def test_avs_steering_equals_a_hook_reference(lively, batch):
    _, b, _ = batch
    n_layers = lively.geom.n_layers
    v = torch.randn(4, n_layers, _hidden(lively), generator=torch.Generator().manual_seed(3)) * 3
    sched = avs.layer_schedule(n_layers)
    alpha = 2.0

    def post(layer):
        def hook(mod, args, out):
            y = (out[0] if isinstance(out, tuple) else out).clone()
            y[:, -1] = avs.steer_residual(y[:, -1], alpha * float(sched[layer]) * v[:, layer])
            return (y, *out[1:]) if isinstance(out, tuple) else y

        return hook

    hooks = [(_layers(lively)[ly].register_forward_hook, post(ly)) for ly in range(n_layers)]
    got = _gen(lively, b.model_inputs, AvsSchedule(v, sched, alpha))
    want = _hf_generate(lively, b.model_inputs, hooks)
    assert torch.equal(got.tokens, want)
    assert not torch.equal(got.tokens, _gen(lively, b.model_inputs).tokens), "steering changed nothing"


def _plain_contrast(m, bn, kind, alpha):
    """Uncached plain-PyTorch reference, one example at a time: the audio row and its negative row as two
    separate single-row forwards over the whole sequence every step."""
    module = m.lm._module
    n = bn.model_inputs["input_ids"].shape[0] // 2
    tok = m.processor.tokenizer
    rows = []
    for i in range(n):
        seqs = []
        for r in (i, n + i):
            keep = bn.model_inputs["attention_mask"][r].bool()
            one = {
                "input_ids": bn.model_inputs["input_ids"][r : r + 1, keep],
                "attention_mask": torch.ones(1, int(keep.sum()), dtype=torch.long),
                "input_features": bn.model_inputs["input_features"][r : r + 1],
                "feature_attention_mask": bn.model_inputs["feature_attention_mask"][r : r + 1],
            }
            seqs.append(one)
        out = []
        for _ in range(N_NEW):
            with torch.no_grad():
                la, ln = (module(**s, use_cache=False).logits[0, -1].float() for s in seqs)
            if kind == "aad":
                score = (1 + alpha) * la - alpha * ln
            else:
                score = la.log_softmax(-1) - alpha * ln.log_softmax(-1)
            t = int(score.argmax())
            out.append(t)
            for s in seqs:
                s["input_ids"] = torch.cat([s["input_ids"], torch.tensor([[t]])], 1)
                s["attention_mask"] = torch.cat([s["attention_mask"], torch.ones(1, 1, dtype=torch.long)], 1)
            if t == tok.eos_token_id:
                break
        rows.append(out)
    return rows


@pytest.mark.parametrize("kind", ["aad", "contrastive-options"])
def test_contrastive_decode_equals_a_plain_loop(lively, batch, kind):
    _, b, bn = batch
    got = _gen(lively, bn.model_inputs, LogitContrast(kind, 1.0))
    want = _plain_contrast(lively, bn, kind, 1.0)
    for i, w in enumerate(want):
        assert got.tokens[i, : got.lengths[i]].tolist() == w
    zero = _gen(lively, bn.model_inputs, LogitContrast(kind, 0.0))
    assert torch.equal(zero.tokens, _gen(lively, b.model_inputs).tokens)


@pytest.mark.parametrize(
    "make",
    [
        lambda m: LayerAdd(torch.randn(4, _hidden(m), generator=torch.Generator().manual_seed(4)) * 3, 2.0),
        lambda m: HeadAdd(_head_deltas(m, 4, 5), 1.5),
        lambda m: AvsSchedule(
            torch.randn(4, m.geom.n_layers, _hidden(m), generator=torch.Generator().manual_seed(6)) * 3,
            avs.layer_schedule(m.geom.n_layers),
            2.0,
        ),
        lambda m: LogitContrast("aad", 1.0),
    ],
    ids=["layer", "head", "avs", "aad"],
)
def test_cached_decoding_equals_uncached(lively, batch, make):
    _, b, bn = batch
    st = make(lively)
    inputs = bn.model_inputs if st.needs_negative else b.model_inputs
    cached = _gen(lively, inputs, st, use_cache=True)
    full = _gen(lively, inputs, st, use_cache=False)
    assert torch.equal(cached.tokens, full.tokens)
    assert cached.lengths == full.lengths


def _rows(st, idx):
    """The same steering restricted to one example."""
    if isinstance(st, LayerAdd):
        return LayerAdd(st.v[idx], st.alpha)
    if isinstance(st, HeadAdd):
        return HeadAdd({k: v[idx] for k, v in st.deltas.items()}, st.alpha)
    return st


def test_batched_left_padded_equals_one_by_one(lively, batch):
    exs, b, _ = batch
    assert len(set(b.n_tokens)) > 1, "the batch should need left padding"
    v = torch.randn(4, _hidden(lively), generator=torch.Generator().manual_seed(7)) * 3
    for st in (LayerAdd(v, 2.0), HeadAdd(_head_deltas(lively, 4, 8), 1.5)):
        whole = _gen(lively, b.model_inputs, st)
        for i, ex in enumerate(exs):
            wav = load_audio(ex.audio_path)
            one = encode(lively.processor, [ex], [wav], None, lively.prompt, lively.geom.audio_token_id)
            alone = _gen(lively, one.model_inputs, _rows(st, slice(i, i + 1)))
            n = alone.lengths[0]
            assert whole.lengths[i] == n
            assert torch.equal(whole.tokens[i, :n], alone.tokens[0, :n])


def test_bad_arguments_fail_with_one_line(lively, batch):
    _, b, _ = batch
    with pytest.raises(SteerAudioError, match="max-new-tokens"):
        generate(lively.lm, _ev(lively), lively.model_inputs(b.model_inputs), None, 0)
    with pytest.raises(SteerAudioError, match="audio and negative rows"):
        one = {k: v[:3] for k, v in b.model_inputs.items()}
        generate(lively.lm, _ev(lively), lively.model_inputs(one), LogitContrast("aad", 1.0), 2)
    with pytest.raises(SteerAudioError, match="unknown contrast"):
        LogitContrast("nope", 1.0)


def test_texts_stop_at_the_end_token(lively, batch):
    _, b, _ = batch
    g = _gen(lively, b.model_inputs)
    tok = lively.processor.tokenizer
    texts = g.texts(tok)
    assert texts[0] == tok.decode(g.tokens[0, : g.lengths[0]].tolist(), skip_special_tokens=True)


# -- the generate protocol of evaluation (evaluate/generate_protocol.py) ------------------------------------
def _resid_at_t(m, inputs):
    """Plain PyTorch: each decoder layer's output at the last prompt position (forward hooks, one row)."""
    got = {}
    handles = [
        layer.register_forward_hook(
            lambda mod, a, o, i=i: got.__setitem__(i, (o[0] if isinstance(o, tuple) else o)[0, -1].clone())
        )
        for i, layer in enumerate(_layers(m))
    ]
    try:
        with torch.no_grad():
            m.lm._module(**{k: v for k, v in inputs.items() if k != "position_ids"}, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return got


def test_protocol_head_guided_uses_the_capture_direction(lively, dataset_path, tmp_path):
    """A method decodes with v(x) from the capture: equal to HF generate with a hook adding alpha * v, where v
    is built from an independent plain-PyTorch reference of the audio and silence passes."""
    import numpy as np

    from steer_audio.capture.run import run_capture
    from steer_audio.evaluate import generate_protocol as gp

    exs = mmau.load(dataset_path).examples[:3]
    cache = run_capture(lively, exs, tmp_path / "cap", batch_size=3)
    data = cache.load([e.id for e in exs])
    weights = {1: 0.5, 3: 0.5}
    alpha = 2.0
    methods = [
        gp.Method("baseline", {}),
        gp.Method("head-guided", {"alpha": alpha, "layer_weights": weights}),
        gp.Method("control/mean v", {"alpha": alpha}),
    ]
    prompt = gp.generation_prompt(lively.prompt, "model")
    cfg = gp.GenerateConfig(max_new_tokens=N_NEW, batch_size=2)
    res = gp.run(lively, methods, exs, data, prompt, cfg)
    assert res.skipped == ["control/mean v"]
    wavs = [load_audio(e.audio_path) for e in exs]
    tok = lively.processor.tokenizer
    for i, ex in enumerate(exs):
        one = encode(lively.processor, [ex], [wavs[i]], None, lively.prompt, lively.geom.audio_token_id)
        sil = encode(
            lively.processor,
            [ex],
            [negative(wavs[i], "silence")],
            None,
            lively.prompt,
            lively.geom.audio_token_id,
        )
        h_a, h_n = _resid_at_t(lively, one.model_inputs), _resid_at_t(lively, sil.model_inputs)
        v = sum(w * (h_a[ly] - h_n[ly]) for ly, w in weights.items())
        for name, hooks in (("baseline", []), ("head-guided", [_last_layer_hook(lively, v[None], alpha)])):
            ids = _hf_generate(lively, one.model_inputs, hooks)[0]
            end = (ids == tok.eos_token_id).nonzero()
            ids = ids[: int(end[0]) + 1] if len(end) else ids
            want = tok.decode(ids.tolist(), skip_special_tokens=True)
            assert res.rows[name][i]["text"] == want
            assert res.rows[name][i]["new_tokens"] == len(ids)
    rows = gp.table(res, n_missing=1, logits_correct={"baseline": np.zeros(4), "head-guided": np.ones(4)})
    assert [r["n"] for r in rows] == [4, 4]  # the missing item counts, as wrong
    assert rows[1]["mcnemar_vs_logits"]["b_base_only"] == 4 - sum(
        r["correct"] for r in res.rows["head-guided"]
    )


def test_generation_prompt_and_scoring_rules(lively):
    from steer_audio.evaluate import generate_protocol as gp

    own = gp.generation_prompt(lively.prompt, "model")
    assert own.spec == lively.prompt and own.extraction == "none"
    r1 = gp.generation_prompt(lively.prompt, "r1-aqa")
    assert r1.extraction == "answer-tag" and "<answer> </answer>" in r1.spec.template
    ex = mmau.Example(
        id="x",
        question="Q?",
        choices=("a dog", "rain"),
        answer="rain",
        correct=frozenset({1}),
        domain="sound",
    )
    from steer_audio.data.prompts import user_text

    assert user_text(ex, r1.spec) == (
        "Q? Please choose the answer from the following options: ['a dog', 'rain']. "
        "Output the final answer in <answer> </answer>."
    )
    with pytest.raises(SteerAudioError, match="unknown --template"):
        gp.GenerateConfig(template="chatty").validate()
    with pytest.raises(SteerAudioError, match="max-new-tokens"):
        gp.GenerateConfig(max_new_tokens=0).validate()


def test_cli_generate_protocol_end_to_end(dataset_path, tmp_path):
    import json

    from typer.testing import CliRunner

    from steer_audio.cli import app

    out = tmp_path / "run"
    args = ["evaluate", "--model", "tiny", "--data", str(dataset_path), "--calib-fraction", "0.5"]
    args += ["--k", "4", "--k-sweep", "4", "--seeds", "2", "--method", "head-guided", "--method", "aad"]
    args += ["--protocol", "generate", "--max-new-tokens", "3", "--out", str(out)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    gen = summary["generate"]
    assert [row["method"] for row in gen["table"]][:3] == ["baseline", "head-guided", "aad"]
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    g_rows = [x for x in rows if x.get("protocol") == "generate"]
    n_eval = summary["splits"]["n_eval"]
    assert len(g_rows) == n_eval * len(gen["table"]) and all("text" in x for x in g_rows)
    assert any(x.get("protocol") != "generate" for x in rows)  # the logits rows stay
    items = json.loads((out / "mmau_predictions.generate.head-guided.json").read_text())
    assert len(items) == n_eval and all("model_output" in it for it in items)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["generate"]["prompt"]["extraction"] == "none"
    assert "## Both protocols side by side" in (out / "report.md").read_text()
    # listen --generate: the unsteered answer equals HF generate's on the same prompt; a steered one is printed
    ex = mmau.load(dataset_path).examples[0]
    args = ["listen", str(ex.audio_path), "-q", ex.question, "-c", ",".join(ex.choices), "--model", "tiny"]
    r = CliRunner().invoke(app, [*args, "--from", str(out), "--generate", "--max-new-tokens", "3", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output[r.output.index("{") :])
    from steer_audio.models import loaded

    m = loaded.load("tiny", device="cpu")
    b = encode(m.processor, [ex], [load_audio(ex.audio_path)], None, m.prompt, m.geom.audio_token_id)
    with torch.no_grad():
        plain = {k: v for k, v in b.model_inputs.items() if k != "position_ids"}
        ids = m.lm._module.generate(**plain, max_new_tokens=3, do_sample=False)[
            0, plain["input_ids"].shape[1] :
        ]
    assert res["generated"] == m.processor.tokenizer.decode(ids.tolist(), skip_special_tokens=True)
    assert isinstance(res["steered_generated"], str) and "alpha" in res


def test_cli_rejects_an_unknown_protocol(dataset_path, tmp_path):
    from typer.testing import CliRunner

    from steer_audio.cli import app

    r = CliRunner().invoke(
        app, ["evaluate", "--model", "tiny", "--protocol", "sample", "--out", str(tmp_path)]
    )
    assert r.exit_code == 1 and "unknown --protocol" in r.output


def test_gpu_benchmark_generation_row_runs_on_the_tiny_model(tiny, tmp_path):
    """benchmarks/gpu_throughput.py --generation, its CPU smoke configuration: every row decodes and is timed."""
    import argparse
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_throughput.py"
    spec = importlib.util.spec_from_file_location("gpu_throughput", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    res: dict = {}
    bench.generation(tiny, argparse.Namespace(gen_tokens=64, out=tmp_path), res, cuda=False)
    gen = res["generation"]
    assert gen["batch"] == 2 and gen["new_tokens"] == 4
    assert len(gen["rows"]) == 5 and all(r["tokens_per_s"] > 0 for r in gen["rows"].values())
    assert gen["rows"]["unsteered"]["relative_to_unsteered"] == 1.0 and gen["hf_generate"]["tokens_per_s"] > 0


def test_another_template_is_captured_under_its_own_prompt(tiny, dataset_path, tmp_path):
    """--template r1-aqa: the directions are read at t of the decoded prompt (a capture of its own), the answer
    is the text in the <answer> tag, and meta.json records the prompt."""
    import json
    from types import SimpleNamespace

    import numpy as np

    from steer_audio.capture.cache import CaptureCache
    from steer_audio.capture.run import run_capture
    from steer_audio.evaluate import generate_protocol as gp
    from steer_audio.steer.methods.base import MethodResult

    ds = mmau.load(dataset_path)
    exs = ds.examples[:3]
    own = run_capture(tiny, exs, tmp_path / "capture", batch_size=3)
    de = own.load([e.id for e in exs])
    results = [
        MethodResult("baseline", {}, np.zeros(3, dtype=int)),
        MethodResult("head-guided", {"alpha": 1.0, "layer_weights": {3: 1.0}}, np.zeros(3, dtype=int)),
    ]
    ev = SimpleNamespace(
        de=de,
        ev_ex=exs,
        ev_missing=[],
        results=results,
        correct_vector=lambda pred: np.array([float(p in e.correct) for p, e in zip(pred, exs, strict=True)]),
    )
    (tmp_path / "meta.json").write_text("{}")
    cfg = gp.GenerateConfig(template="r1-aqa", max_new_tokens=2, batch_size=2)
    summ = gp.evaluate(tmp_path, tiny, ev, ds, cfg)
    key = json.loads((tmp_path / "capture-generate" / "capture_index.json").read_text())["key"]
    assert "<answer> </answer>" in key["prompt"]["template"]
    other = CaptureCache(tmp_path / "capture-generate").load([e.id for e in exs])
    assert not torch.equal(other["resid_a"], de["resid_a"])  # another prompt, another t
    assert summ["prompt"]["extraction"] == "answer-tag"
    assert json.loads((tmp_path / "meta.json").read_text())["generate"]["prompt"]["template"].endswith(
        "Output the final answer in <answer> </answer>."
    )
    assert [r["method"] for r in summ["table"]] == ["baseline", "head-guided"]
    assert all("mcnemar_vs_logits" in r for r in summ["table"])


@pytest.mark.parametrize("model", ["qwen2-audio", "r1-aqa"])
def test_recipes_name_the_generation_prompt_and_reach_evaluate(model):
    import inspect

    from steer_audio.cli import evaluate
    from steer_audio.data.prompts import GENERATION_TEMPLATES
    from steer_audio.recipes import load_recipe

    root = Path(__file__).resolve().parent.parent / "recipes" / model
    logits, both = load_recipe(root / "table1.toml"), load_recipe(root / "table1-generate.toml")
    assert logits.protocol == "logits" and both.protocol == "generate"
    assert both.template == logits.template and both.template in GENERATION_TEMPLATES
    kw = both.cli_kwargs(Path("out"))
    assert set(kw) <= set(inspect.signature(evaluate).parameters)
    assert (kw["protocol"], kw["template"], kw["max_new_tokens"]) == ("generate", both.template, 256)
