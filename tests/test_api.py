"""The public API (`import steer_audio`), one test or more per public name, on the tiny random model.

References are independent of the code under test: the CLI's on-disk capture (`capture/run.py`),
`scipy.stats.pointbiserialr`, the cached scoring of `steer/cached.py`, the nnsight interventions of
`steer/forward.py` and `steer/avs.py`, HF `generate`, and the processor called by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats

import steer_audio as sa
from steer_audio.capture.run import run_capture
from steer_audio.data import mmau


@pytest.fixture(scope="module")
def model():
    return sa.load_model("tiny", device="cpu")


@pytest.fixture(scope="module")
def examples(dataset_path):
    return sa.load_examples(dataset_path)


@pytest.fixture(scope="module")
def cap(model, examples):
    return sa.capture_examples(model, examples, batch_size=4)


def _valid(x: torch.Tensor) -> torch.Tensor:
    return x.masked_fill(~torch.isfinite(x), 0.0)


def test_all_names_resolve_and_are_documented():
    assert sa.__all__ == sorted(sa.__all__)
    assert set(sa.__all__) == set(sa._EXPORTS)
    for name in sa.__all__:
        obj = getattr(sa, name)
        assert (obj.__doc__ or "").strip(), f"steer_audio.{name} has no docstring"
    with pytest.raises(AttributeError):
        sa.no_such_name  # noqa: B018


def test_load_model_gives_wrapper_processor_and_arch(model):
    from steer_audio.models.arch import ARCHS
    from steer_audio.models.wrapper import AudioLM

    assert isinstance(model.nnsight, AudioLM) and model.nnsight is model.lm
    assert model.arch is ARCHS["qwen2_audio/qwen2"]
    assert model.processor.tokenizer is not None
    assert model.random_weights and model.geom.n_layers == 4
    with pytest.raises(sa.SteerAudioError, match="unknown model"):
        sa.load_model("no-such-model")


def test_trace_takes_an_example_like_a_text_prompt(model, examples, cap):
    """`with model.trace(example)` reads the same residual as the capture's audio pass."""
    ev = model.envoys()
    with model.trace(examples[0]):
        h = ev.layers[-1].output[:, -1].save()
    i = cap.ids.index(examples[0].id)
    torch.testing.assert_close(h[0], cap["resid_a"][i, -1].float(), atol=1e-5, rtol=1e-5)


def test_trace_takes_an_audio_text_pair(model, examples):
    """(audio, text) is the user turn after the audio; equal to the processor called by hand."""
    from steer_audio.data.audio import load_audio

    wav = load_audio(examples[1].audio_path)
    conv = [
        {"role": "user", "content": [{"type": "audio", "audio_url": "x"}, {"type": "text", "text": "Hi?"}]}
    ]
    text = model.processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
    enc = model.processor(text=[text], audio=[wav], return_tensors="pt", sampling_rate=16000)
    enc["position_ids"] = torch.arange(enc["input_ids"].shape[1])[None]
    ev = model.envoys()
    with model.trace((examples[1].audio_path, "Hi?")):
        got = ev.lm_head.output[:, -1].save()
    with model.trace(**{k: v for k, v in enc.items()}):
        want = ev.lm_head.output[:, -1].save()
    assert torch.equal(got, want)


def test_trace_batches_examples_with_left_padding(model, examples):
    ev = model.envoys()
    with model.trace(examples[:3]):
        both = ev.lm_head.output[:, -1].save()
    for i in range(3):
        with model.trace(examples[i]):
            one = ev.lm_head.output[:, -1].save()
        torch.testing.assert_close(both[i], one[0], atol=1e-5, rtol=1e-5)


def test_make_example(tmp_path, examples):
    ex = sa.make_example(examples[0].audio_path, "What?", ["a dog", "a cat"], "a cat", id="mine")
    assert (ex.id, ex.correct, ex.choices) == ("mine", frozenset({1}), ("a dog", "a cat"))
    arr = sa.make_example(np.zeros(1600, np.float32), "What?", ["x", "y"])
    assert arr.audio_array is not None and not arr.correct
    with pytest.raises(sa.SteerAudioError, match="not one of the choices"):
        sa.make_example(examples[0].audio_path, "What?", ["a", "b"], "c")


def test_load_examples_reads_mmau_json(dataset_path):
    exs = sa.load_examples(dataset_path)
    assert [e.id for e in exs] == [e.id for e in mmau.load(dataset_path).examples]
    assert all(isinstance(e, sa.Example) for e in exs)


def test_capture_in_memory_equals_the_cli_cache(model, examples, cap, tmp_path):
    """The in-memory capture is the CLI's run-directory capture, tensor for tensor."""
    cache = run_capture(model, examples, tmp_path / "cli", batch_size=4)
    want = cache.load(cap.ids)
    for k in want.t:
        assert torch.equal(cap[k], want[k]), k
    ro = cache.readout()
    assert ro.token_ids == cap.readout.token_ids
    assert torch.equal(ro.w, cap.readout.w) and torch.equal(ro.norm, cap.readout.norm)
    assert (ro.eps, ro.kind) == (cap.readout.eps, cap.readout.kind)


def test_capture_cached_resumes(model, examples, cap, tmp_path):
    """With cache_dir, a second call captures only what is missing (one more shard) and returns everything."""
    d = tmp_path / "cache"
    first = sa.capture_examples(model, examples[:4], cache_dir=d, batch_size=4)
    assert len(first) == 4 and json.loads((d / "capture_index.json").read_text())["shards"] == 1
    full = sa.capture_examples(model, examples, cache_dir=d, batch_size=4)
    idx = json.loads((d / "capture_index.json").read_text())
    assert idx["shards"] == 1 + -(-(len(examples) - 4) // 4)
    assert full.ids == [e.id for e in examples]
    for k in ("resid_a", "resid_n", "mass_a", "logits_a"):
        torch.testing.assert_close(full[k].float(), cap.subset(full.ids)[k].float(), atol=1e-5, rtol=1e-5)
    with pytest.raises(sa.SteerAudioError, match="different settings"):
        sa.capture_examples(model, examples, negative="noise", cache_dir=d)


def test_capture_records_missing_audio(model, examples, tmp_path):
    from dataclasses import replace

    gone = replace(examples[0], id="gone", audio_path=tmp_path / "nope.wav")
    c = sa.capture_examples(model, [gone, *examples[1:3]])
    assert c.ids == [e.id for e in examples[1:3]] and "gone" in c.missing


def test_find_heads_from_calibration_alone_is_point_biserial(cap, examples):
    calib = cap.subset([e.id for e in examples[:8]])
    hs = sa.find_heads(calib, k=5)
    logits = calib["logits_a"].numpy()
    c = np.array(
        [float(int(np.argmax(row)) in e.correct) for row, e in zip(logits, calib.examples, strict=True)]
    )
    mass = calib["mass_a"].numpy()
    ref = np.zeros(mass.shape[1:])
    for layer in range(mass.shape[1]):
        for h in range(mass.shape[2]):
            ref[layer, h] = stats.pointbiserialr(c, mass[:, layer, h]).statistic
    np.testing.assert_allclose(hs.r.numpy(), ref, atol=1e-5)
    order = np.argsort(-np.abs(ref).reshape(-1), kind="stable")[:5]
    assert [layer * mass.shape[2] + h for layer, h in hs.heads.heads] == order.tolist()
    assert hs.n_calib == 8 and hs.calib_accuracy == pytest.approx(c.mean())
    assert hs.top(2).heads == hs.heads.heads[:2]


def test_find_heads_leaves_out_ablated_twins(cap, examples):
    from dataclasses import replace

    calib = cap.subset([e.id for e in examples[:8]])
    twins = [
        replace(e, extra={**e.extra, "condition": "silence"}) if i < 2 else e
        for i, e in enumerate(calib.examples)
    ]
    mixed = sa.Capture(twins, calib.data, calib.readout, calib.negative)
    real = cap.subset([e.id for e in examples[2:8]])
    got, want = sa.find_heads(mixed, k=5), sa.find_heads(real, k=5)
    assert torch.equal(got.r, want.r) and got.n_calib == 6
    assert not torch.equal(got.r, sa.find_heads(calib, k=5).r)  # the twins would have changed r


def test_head_scores_save_load(cap, tmp_path):
    hs = sa.find_heads(cap, k=4)
    back = sa.HeadScores.load(hs.save(tmp_path / "heads"))
    assert torch.equal(back.r, hs.r) and back.heads.heads == hs.heads.heads
    np.testing.assert_allclose(back.heads.r, hs.heads.r, atol=1e-6)
    doc = json.loads((tmp_path / "heads" / "heads.json").read_text())
    assert doc["heads"][0]["head"] == hs.heads.names()[0]


def test_listening_score_is_eq3(cap):
    hs = sa.find_heads(cap, k=4)
    mass = cap["mass_a"].numpy()
    w = np.array(hs.heads.r)
    ref = sum(w[i] * mass[:, layer, h] for i, (layer, h) in enumerate(hs.heads.heads)) / np.abs(w).sum()
    np.testing.assert_allclose(sa.listening_score(cap, hs), ref, rtol=1e-6)
    np.testing.assert_allclose(
        sa.listening_score(cap, hs.heads, normalise=False), ref * np.abs(w).sum(), rtol=1e-6
    )


def test_head_guided_direction_is_eq5(cap):
    hs = sa.find_heads(cap, k=6)
    st = sa.head_guided(cap, hs, alpha=2.0)
    d = cap["resid_a"].float() - cap["resid_n"].float()
    ref = sum(hs.heads.layer_weights()[layer] * d[:, layer] for layer in hs.heads.layer_weights())
    torch.testing.assert_close(st.v, ref)
    assert st.layers == tuple(sorted(hs.heads.layer_weights())) and sum(st.weights) == pytest.approx(1.0)
    assert st.ids == tuple(cap.ids) and st.alpha == 2.0


def test_direction_in_the_users_trace_equals_cached_scoring(model, cap):
    """A steering object edited into the user's own trace gives the option logits the CLI's cached scoring
    (steer/cached.py, from the capture alone) gives; and it changes them."""
    hs = sa.find_heads(cap, k=4)
    for st in (sa.head_guided(cap, hs, alpha=4.0), sa.single_layer(cap, 1, alpha=4.0)):
        ev = model.envoys()
        with model.trace(cap.examples):
            st.edit(model)
            ev.final_norm.output = ev.final_norm.output[:, -1:]
            logits = ev.lm_head.output[:, -1].save()
        got = torch.stack(
            [
                logits[i].float()[cap["cand"][i].clamp(min=0)].masked_fill(cap["cand"][i] < 0, -torch.inf)
                for i in range(len(cap))
            ]
        )
        want = cap.logits(st)
        torch.testing.assert_close(_valid(got), _valid(want), atol=1e-4, rtol=1e-4)
        assert not torch.allclose(_valid(want), _valid(cap.logits()), atol=1e-3)
        torch.testing.assert_close(
            _valid(sa.option_logits(model, cap.examples, st)), _valid(got), atol=1e-5, rtol=1e-5
        )


def test_alpha_zero_is_a_no_op(model, cap):
    hs = sa.find_heads(cap, k=4)
    exs = cap.examples[:3]
    base = sa.option_logits(model, exs)
    for st in (sa.head_guided(cap, hs, 0.0), sa.head_level(cap, hs, 0.0), sa.avs(cap, 0.0)):
        st = _rows_of(st, 3)
        assert torch.equal(sa.option_logits(model, exs, st), base)
        with st.apply(model):
            assert torch.equal(sa.option_logits(model, exs), base)


def _rows_of(st, n):
    """The first n rows of a steering object (its tensors are per example)."""
    from dataclasses import replace

    if isinstance(st, sa.HeadSteering):
        return replace(st, deltas={k: v[:n] for k, v in st.deltas.items()}, ids=st.ids[:n])
    return replace(st, v=st.v[:n], ids=st.ids[:n])


def test_apply_hooks_equal_the_nnsight_edit_and_the_reference_interventions(model, cap):
    """`apply()` (forward hooks) and `edit()` (nnsight) agree, and both equal the project's reference
    interventions: steer/forward.py for head-level, steer/avs.py for AVS."""
    from steer_audio.steer.avs import avs_logits
    from steer_audio.steer.forward import forward_logits

    hs = sa.find_heads(cap, k=4)
    exs = cap.examples[:3]
    inputs = model.inputs(exs)
    ev = model.envoys()
    cand = cap["cand"][:3]
    for st in (
        _rows_of(sa.head_guided(cap, hs, 3.0), 3),
        _rows_of(sa.head_level(cap, hs, 3.0), 3),
        _rows_of(sa.avs(cap, 3.0), 3),
    ):
        edited = sa.option_logits(model, exs, st)
        with st.apply(model):
            hooked = sa.option_logits(model, exs)
        torch.testing.assert_close(_valid(hooked), _valid(edited), atol=1e-5, rtol=1e-5)
        if isinstance(st, sa.HeadSteering):
            ref = forward_logits(model.lm, ev, inputs, cand, {k: 3.0 * v for k, v in st.deltas.items()})
        elif isinstance(st, sa.AVSSteering):
            ref = avs_logits(model.lm, ev, inputs, cand, st.v, 3.0, st.schedule)
        else:
            ref = forward_logits(model.lm, ev, inputs, cand, final_add=3.0 * st.v)
        torch.testing.assert_close(_valid(edited), _valid(ref), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(_valid(edited), _valid(sa.option_logits(model, exs)), atol=1e-4)


def test_saved_and_reloaded_steering_gives_identical_logits(model, cap, tmp_path):
    hs = sa.find_heads(cap, k=4)
    exs = cap.examples[:3]
    for i, st in enumerate(
        (
            _rows_of(sa.head_guided(cap, hs, 2.5), 3),
            _rows_of(sa.head_level(cap, hs, 2.5), 3),
            _rows_of(sa.avs(cap, 2.5, band=(0.5, 1.0)), 3),
        )
    ):
        folder = st.save(tmp_path / f"s{i}", note="test")
        back = sa.load_steering(folder)
        assert type(back) is type(st) and back.alpha == st.alpha and back.ids == st.ids
        assert back.method == st.method and back.info == st.info
        assert getattr(back, "layers", None) == getattr(st, "layers", None)
        assert torch.equal(sa.option_logits(model, exs, back), sa.option_logits(model, exs, st))
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["stage"] == "steering" and meta["note"] == "test" and "git_sha" in meta
    (tmp_path / "s0" / "steering.json").write_text(json.dumps({"format": 99, "kind": "residual"}))
    with pytest.raises(sa.SteerAudioError, match="not a steering object"):
        sa.load_steering(tmp_path / "s0")


def test_mean_direction_broadcasts_to_any_batch(model, cap):
    hs = sa.find_heads(cap, k=4)
    st = sa.head_guided(cap, hs, 2.0).mean()
    assert st.v.shape[0] == 1
    got = sa.option_logits(model, cap.examples, st)
    want = cap.logits(sa.ResidualSteering(alpha=2.0, v=st.v.expand(len(cap), -1)))
    torch.testing.assert_close(_valid(got), _valid(want), atol=1e-4, rtol=1e-4)


def test_steering_during_generate(model, cap):
    """Around HF `generate`: α = 0 changes no token; α > 0 changes only the last position of each forward
    (the prefix logits are identical), its first step equals the cached scoring, and its tokens equal the
    project's own KV-cached decode loop (steer/generate.py) with the same primitive."""
    from steer_audio.steer.generate import generate

    hs = sa.find_heads(cap, k=4)
    exs = cap.examples[:2]
    st = _rows_of(sa.head_guided(cap, hs, 6.0), 2)
    inputs = model.inputs(exs)
    gen_in = {k: v for k, v in inputs.items() if k != "position_ids"}
    eos = model.module.generation_config.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    kw = dict(
        max_new_tokens=6, do_sample=False, return_dict_in_generate=True, output_scores=True, pad_token_id=0
    )
    plain = model.module.generate(**gen_in, **kw)
    with st.with_alpha(0.0).apply(model):
        zero = model.module.generate(**gen_in, **kw)
    assert torch.equal(zero.sequences, plain.sequences)
    with st.apply(model):
        steered = model.module.generate(**gen_in, **kw)
    # the first step's logits at the candidate tokens are the cached scoring of the same direction
    first = steered.scores[0].float()
    cand = cap["cand"][:2]
    got = torch.stack([first[i][cand[i].clamp(min=0)].masked_fill(cand[i] < 0, -torch.inf) for i in range(2)])
    want = cap.subset([e.id for e in exs]).logits(st)
    torch.testing.assert_close(_valid(got), _valid(want), atol=1e-4, rtol=1e-4)
    assert not torch.equal(steered.sequences, plain.sequences)
    # only the last position of a forward changes
    with torch.no_grad():
        base = model.module(**inputs).logits
        with st.apply(model):
            moved = model.module(**inputs).logits
    assert torch.equal(moved[:, :-1], base[:, :-1]) and not torch.allclose(moved[:, -1], base[:, -1])
    # the project's decode loop with the same object's primitive picks the same tokens
    n_prompt = inputs["input_ids"].shape[1]
    ours = generate(model.lm, model.envoys(), inputs, st.primitive(), max_new_tokens=6, eos_ids=eos, pad_id=0)
    assert torch.equal(ours.tokens, steered.sequences[:, n_prompt:])


def test_capture_logits_refuses_forward_only_steering(cap):
    hs = sa.find_heads(cap, k=4)
    with pytest.raises(sa.SteerAudioError, match="forward pass"):
        cap.logits(sa.head_level(cap, hs, 1.0))  # type: ignore[arg-type]
    with pytest.raises(sa.SteerAudioError, match="outside"):
        sa.single_layer(cap, 9)


def _example(name: str):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_example_find_heads(dataset_path, tmp_path, capsys):
    heads = _example("find_heads").main(
        [
            "--model",
            "tiny",
            "--device",
            "cpu",
            "--data",
            str(dataset_path),
            "--k",
            "3",
            "--out",
            str(tmp_path / "h"),
        ]
    )
    assert heads.k == 3 and "RANDOM WEIGHTS" in capsys.readouterr().out
    assert torch.equal(sa.HeadScores.load(tmp_path / "h").r, heads.r)


def test_example_steer_question(dataset_path, tmp_path, examples):
    _example("find_heads").main(
        ["--model", "tiny", "--device", "cpu", "--data", str(dataset_path), "--out", str(tmp_path / "h")]
    )
    out = _example("steer_question").main(
        [
            "--model",
            "tiny",
            "--device",
            "cpu",
            "--clip",
            str(examples[0].audio_path),
            "-q",
            "What?",
            "-c",
            "a",
            "-c",
            "b",
            "--heads",
            str(tmp_path / "h"),
            "--alpha",
            "0",
            "--max-new-tokens",
            "3",
        ]
    )
    # alpha = 0: steering changes nothing, in the trace or in generate
    assert out["steered"] == out["unsteered"] and out["generated_steered"] == out["generated"]


def test_example_compare_negatives(dataset_path):
    rows = _example("compare_negatives").main(
        ["--model", "tiny", "--device", "cpu", "--data", str(dataset_path), "--limit", "6", "--alpha", "0,2"]
    )
    assert set(rows) == {"silence", "noise", "shuffle"}
    assert all(0.0 <= r["acc@0"] <= 1.0 and r["mean_norm_v"] > 0 for r in rows.values())
    # alpha = 0 is the baseline whatever the negative
    assert len({r["acc@0"] for r in rows.values()}) == 1


def test_readme_python_api_snippet_runs(tmp_path, monkeypatch):
    """The README's "Python API" snippet, run as written (from a file: nnsight reads a trace's source)."""
    import re
    import runpy
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme[readme.index("## Python API") :], re.S).group(1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "snippet.py").write_text(code)
    g = runpy.run_path(str(tmp_path / "snippet.py"))
    assert g["ids"].shape[1] == g["model"].inputs(g["cap"].examples[0])["input_ids"].shape[1] + 4
    assert (tmp_path / "heads" / "heads.json").is_file() and (tmp_path / "steer" / "steering.json").is_file()
    back = sa.load_steering(tmp_path / "steer")
    assert torch.equal(back.v, g["steer"].v)


def test_trace_invokes_take_examples(model, examples):
    """nnsight's invoke form: one example per invoke, batched (left-padded) into one forward."""
    ev = model.envoys()
    with model.trace() as tracer:
        with tracer.invoke(examples[0]):
            a = ev.lm_head.output[:, -1].save()
        with tracer.invoke((examples[1].audio_path, "Hi?")):
            b = ev.lm_head.output[:, -1].save()
    with model.trace(examples[0]):
        a1 = ev.lm_head.output[:, -1].save()
    with model.trace((examples[1].audio_path, "Hi?")):
        b1 = ev.lm_head.output[:, -1].save()
    torch.testing.assert_close(a, a1, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b, b1, atol=1e-5, rtol=1e-5)


def test_apply_around_the_users_nnsight_trace(model, cap):
    """`with steering.apply(model):` around a trace steers the traced forward like `edit()` inside it. The
    trace reads a hooked module's own output (before the hook adds alpha * v); what follows sees the edit."""
    hs = sa.find_heads(cap, k=4)
    st = _rows_of(sa.head_guided(cap, hs, 3.0), 2)
    exs = cap.examples[:2]
    ev = model.envoys()
    with model.trace(exs):
        st.edit(model)
        want_h = ev.layers[-1].output[:, -1].save()
        want = ev.lm_head.output[:, -1].save()
    with st.apply(model):
        with model.trace(exs):
            got_h = ev.layers[-1].output[:, -1].save()
            got = ev.lm_head.output[:, -1].save()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_h + 3.0 * st.v, want_h, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got_h, want_h, atol=1e-3)
