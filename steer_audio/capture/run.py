"""Stage: examples -> capture cache. Batches of (audio, negative) pairs, one trace each; resumable."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..data.audio import duration_hint, import_decoders
from ..data.mmau import Example
from ..data.prompts import candidate_ids
from ..errors import SteerAudioError
from ..models.loaded import LoadedModel
from ..progress import bar
from . import fast, prefix
from .cache import CaptureCache
from .inputs import MAX_OPTIONS
from .prepare import prep_spec, prepare_batch
from .trace import capture_trace, envoys

log = logging.getLogger(__name__)

#: the wall-time split `run_capture` accumulates into `stats` (seconds)
STAT_KEYS = ("wait_s", "launch_s", "sync_s", "trace_s", "write_s")


def cache_key(m: LoadedModel, data_sha: str | None, negative_kind: str, seed: int) -> dict[str, Any]:
    return {
        "model": m.spec,
        "dtype": str(m.dtype).replace("torch.", ""),
        "prompt": m.prompt.to_json(),
        "data_sha256": data_sha,
        "negative": negative_kind,
        "negative_seed": seed,
    }


def run_capture(
    m: LoadedModel,
    examples: list[Example],
    out_dir: Path,
    batch_size: int = 8,
    negative_kind: str = "silence",
    strict: bool = False,
    data_sha: str | None = None,
    seed: int = 0,
    readout_ids: list[int] | None = None,
    stats: dict[str, Any] | None = None,
    levers: str = "auto",
) -> CaptureCache:
    """Capture `examples` into `out_dir` (resuming what is there), with the capture levers `levers` names
    (capture/fast.py `resolve`: "auto" = the bit-identical ones that apply to `m`, "none", or a comma list)
    turned on for the run.

    Three stages overlap: a worker thread prepares batch k+1 (capture/prepare.py: audio, negatives, tokens,
    features) while the host launches batch k's trace and then, while the device computes it, writes batch
    k-1's shard. `stats`, if given, receives where the wall time went (STAT_KEYS): waiting for the prepared
    batch (wait_s), launching the trace (launch_s), waiting for the device's results (sync_s;
    trace_s = launch_s + sync_s), the shard writes (write_s); and each batch's end time (batch_end)."""
    lv = fast.resolve(levers, m)
    ctx = fast.install(m, lv) if lv != fast.Levers() else contextlib.nullcontext()
    with ctx:
        return _run_capture(
            m, examples, out_dir, batch_size, negative_kind, strict, data_sha, seed, readout_ids, stats
        )


def _run_capture(
    m: LoadedModel,
    examples: list[Example],
    out_dir: Path,
    batch_size: int,
    negative_kind: str,
    strict: bool,
    data_sha: str | None,
    seed: int,
    readout_ids: list[int] | None,
    stats: dict[str, Any] | None,
) -> CaptureCache:
    if batch_size < 1:
        raise SteerAudioError("--batch-size must be at least 1")
    cache = CaptureCache(out_dir)
    cache.bind(cache_key(m, data_sha, negative_kind, seed))
    todo = capture_order([e for e in examples if e.id not in cache.done])
    ev = envoys(m.lm, m.arch, m.geom, m.name)
    need_readout = not (Path(out_dir) / "readout.safetensors").exists()
    if readout_ids is None:
        readout_ids = all_candidate_ids(m, examples)
    if todo:
        log.info(
            "capturing %d of %d examples (%d cached) in batches of %d",
            len(todo),
            len(examples),
            len(examples) - len(todo),
            batch_size,
        )

    spec = prep_spec(m, negative_kind, strict, seed)

    chunks = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    st = stats if stats is not None else {}
    for k_ in STAT_KEYS:
        st.setdefault(k_, 0.0)
    st.setdefault("batch_end", [])
    clock = time.perf_counter

    def finish(pend: tuple[Any, dict[str, torch.Tensor], Any]) -> None:
        """Wait for a launched batch's results and write its shard (runs after the next batch is launched, so
        the host writes while the device computes)."""
        b, out, done = pend
        t0 = clock()
        if done is not None:
            done.synchronize()
        t1 = clock()
        st["sync_s"] += t1 - t0
        if "readout_w" in out:
            cache.save_readout(
                readout_ids, out["readout_w"], out["readout_norm"], m.final_norm_eps(), m.arch.norm_kind
            )
        cache.add_shard(b.ids, shard_rows(out, b, m.dtype), shard_info(b))
        p.advance(len(b.ids))
        t2 = clock()
        st["write_s"] += t2 - t1
        st["batch_end"].append(t2)

    pending: tuple[Any, dict[str, torch.Tensor], Any] | None = None
    import_decoders()  # before the loader thread starts (data/audio.py says why)
    with bar(len(todo), "capture") as p, ThreadPoolExecutor(max_workers=1) as pool:
        nxt = pool.submit(prepare_batch, m.processor, spec, chunks[0]) if chunks else None
        try:
            for k in range(len(chunks)):
                t0 = clock()
                b, missing = nxt.result()  # type: ignore[union-attr]
                if k + 1 < len(chunks):
                    nxt = pool.submit(prepare_batch, m.processor, spec, chunks[k + 1])
                t1 = clock()
                st["wait_s"] += t1 - t0
                for ex, why in missing:
                    log.warning("%s: %s (counted as missing)", ex.id, why)
                    cache.add_missing(ex.id, why)
                    p.advance(1)
                if b is None:
                    continue
                # the lm_head rows steering needs, read once, by the first trace
                ro, need_readout = (torch.tensor(readout_ids) if need_readout else None), False
                if isinstance(b, tuple):  # `drop`: audio rows and no-audio rows were traced separately
                    out_a, out_n = trace_batch(m, ev, b[0], ro), trace_batch(m, ev, b[1], None)
                    out = {k_: torch.cat([v, out_n[k_]]) if k_ in out_n else v for k_, v in out_a.items()}
                    b = replace(
                        b[0],
                        cand=torch.cat([b[0].cand, b[1].cand]),
                        cand_valid=torch.cat([b[0].cand_valid, b[1].cand_valid]),
                    )
                else:
                    out = trace_batch(m, ev, b, ro)
                # the kernels are queued: copy the results to (pinned) host memory without waiting for them
                cuda_dev = next((v.device for v in out.values() if v.is_cuda), None)
                out = {k_: v.to("cpu", non_blocking=True) for k_, v in out.items()}
                done = None
                if cuda_dev is not None:  # on the outputs' device: the current one may be another GPU
                    done = torch.cuda.Event()
                    done.record(torch.cuda.current_stream(cuda_dev))
                st["launch_s"] += clock() - t1
                if pending is not None:
                    prev, pending = pending, None
                    finish(prev)
                pending = (b, out, done)
        except BaseException:
            # an error or interrupt in batch k: batch k-1 is complete on the device, keep it for --resume
            if pending is not None:
                with contextlib.suppress(Exception):
                    finish(pending)
            raise
        if pending is not None:
            finish(pending)
    st["trace_s"] = st["launch_s"] + st["sync_s"]
    return cache


def capture_order(examples: list[Example]) -> list[Example]:
    """Examples so that a batch pads little: by clip length in whole seconds (the clip-length encoder's 1 s
    buckets, models/audio_embed.py), then by the length of the question and options text (most MMAU clips are
    10 s, so the text decides the padded token length), then by id. The key depends on the example alone, so
    any subsequence keeps this order: data-parallel workers form the same batches as one process."""
    return sorted(examples, key=order_key)


def order_key(e: Example) -> tuple[int, int, str]:
    text = len(e.question) + sum(len(c) for c in e.choices)
    return math.ceil(duration_hint(e.audio_path, e.audio_array)), text, e.id


#: per-row outputs of `capture_trace` (the readout tensors are per batch)
ROW_OUTPUTS = ("resid", "z", "mass", "cand_logits")


def trace_batch(
    m: LoadedModel,
    ev: Any,
    b: Any,
    ro: torch.Tensor | None = None,
    dedupe: bool = True,
    share_prefix: bool = True,
) -> dict[str, torch.Tensor]:
    """The capture trace on one encoded batch, inputs placed for the model (local or remote).

    Under `torch.no_grad()`: a capture never needs a backward pass, and without the autograd graph the forward
    is faster on the CPU with bit-identical outputs (benchmarks/mini_cpu_speed.py --capture). With `dedupe`, a
    negative row whose input equals its audio row (an all-zero clip under the silence negative: listen-bench's
    silence twins, a quarter of its items) is not traced twice: the audio row's outputs are used for both.
    With `share_prefix` (local float32 runs, capture/prefix.py), rows that agree through their last audio
    token (one clip under several prompts; the silence negatives of one length) run that prefix once: the
    same numbers up to float rounding."""
    dev = m.trace_device
    src = _duplicate_rows(b) if dedupe else None
    if src is not None:
        b, index = src
    with torch.no_grad():
        inputs = m.model_inputs(b.model_inputs, b.row_keys)
        # non_blocking: from pageable memory the driver stages the bytes at once, without waiting for the device
        am, cand = b.audio_mask.to(dev, non_blocking=True), b.cand.to(dev, non_blocking=True)
        shared = prefix.share(m, inputs, am) if share_prefix and prefix.applies(m) else None
        past = None
        if shared is not None:
            inputs, am, past = shared.inputs, shared.audio_mask, shared.past_keys
        out = capture_trace(m.lm, ev, m.geom, inputs, am, cand, m.remote, ro, past)
    if src is not None:
        out = {k: (v[index.to(v.device)] if k in ROW_OUTPUTS else v) for k, v in out.items()}
    return out


def _duplicate_rows(b: Any) -> tuple[Any, torch.Tensor] | None:
    """(the batch without negative rows identical to their audio row, row -> traced row), or None if none.

    Rows are identical when both carry the same all-zero audio key (`row_keys`, set only for a fully
    determined input) and, as `encode` checked, the same input_ids; they keep the batch's padded length."""
    keys = getattr(b, "row_keys", None)
    n = len(b.ids)
    if keys is None or len(keys) != 2 * n:
        return None
    dup = {n + i for i in range(n) if keys[i] is not None and keys[i] == keys[n + i]}
    if not dup:
        return None
    keep = [r for r in range(2 * n) if r not in dup]
    pos = {r: j for j, r in enumerate(keep)}
    index = torch.tensor([pos[r - n] if r in dup else pos[r] for r in range(2 * n)])
    sel = torch.tensor(keep)
    rows = {k: (v[sel] if v.shape[0] == 2 * n else v) for k, v in b.model_inputs.items()}
    reduced = replace(
        b,
        model_inputs=rows,
        audio_mask=b.audio_mask[sel],
        cand=b.cand[sel],
        cand_valid=b.cand_valid[sel],
        row_keys=[keys[r] for r in keep],
    )
    return reduced, index


def all_candidate_ids(m: LoadedModel, examples: list[Example]) -> list[int]:
    """Every token any option of any example is scored by (the lm_head rows cached steering needs)."""
    return sorted({t for e in examples for t in candidate_ids(m.processor.tokenizer, e, m.prompt)})


def shard_rows(out: dict[str, torch.Tensor], b: Any, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """One batch's trace outputs as the cache's per-example rows (capture/cache.py FIELDS)."""
    n = len(b.ids)
    o = b.cand.shape[1]

    def logits(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        full = torch.full((x.shape[0], MAX_OPTIONS), float("-inf"))
        full[:, :o] = x.float().cpu().masked_fill(~valid, float("-inf"))
        return full

    cand = torch.full((n, MAX_OPTIONS), -1, dtype=torch.long)
    cand[:, :o] = b.cand[:n].masked_fill(~b.cand_valid[:n], -1)
    resid, z, mass = out["resid"].cpu(), out["z"].cpu(), out["mass"].cpu().float()
    return {
        "resid_a": resid[:n].to(dtype),
        "resid_n": resid[n:].to(dtype),
        "dz": (z[:n].float() - z[n:].float()).to(dtype),
        "mass_a": mass[:n],
        "mass_n": mass[n:],
        "logits_a": logits(out["cand_logits"][:n], b.cand_valid[:n]),
        "logits_n": logits(out["cand_logits"][n:], b.cand_valid[n:]),
        "cand": cand,
    }


def shard_info(b: Any) -> list[dict[str, Any]]:
    """Per example of a batch: option, token and audio-token counts (the cache index's entries)."""
    return [
        {
            "n_options": int(b.cand_valid[i].sum()),
            "n_tokens": int(b.n_tokens[i]),
            "n_audio": int(b.n_audio[i]),
        }
        for i in range(len(b.ids))
    ]
