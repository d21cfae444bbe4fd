"""Audio rows as input embeddings, computed the cheap way and numerically the same as the model's own forward.

`Qwen2AudioForConditionalGeneration.forward` runs its Whisper encoder on the whole padded window (30 s for
Qwen2-Audio, 10 s for `mini`) and masks the padded keys. Two facts make most of that work unnecessary:

* **Clip length.** Every frame the model keeps depends only on the clip's own mel frames plus one padded
  frame (the convolutions' receptive field), and on no padded key (they are masked). Running the same
  encoder modules on the first ``2 * n_valid + 1`` mel frames, with the same key mask, gives the same
  features (up to float rounding of smaller matrix shapes). A 10-s clip costs a third of a 30-s window.
* **Repeated inputs.** The silence negative of a given length has one fixed input (all-zero audio), so
  its encoder output is computed once per length and reused (`row_keys`). Within a batch, rows with the
  same log-mel input (one clip under several prompts, e.g. listen-bench's twins) are encoded once.

The result is handed to the model as ``inputs_embeds`` (token embeddings with the projected audio
features scattered into the ``<|AUDIO|>`` positions, exactly what the model's forward does), so every
nnsight capture and intervention on the decoder is unchanged. Only architectures with an ``encoder``
entry in the architecture table take this path; remote (NDIF) runs keep the plain inputs, so the server
does the encoding.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from transformers.masking_utils import create_bidirectional_mask

from ..errors import SteerAudioError
from .arch import ArchSpec, resolve

#: mel frames the trimmed encoder input is rounded up to (1 s)
BUCKET = 100

#: the model inputs this path replaces
AUDIO_KEYS = ("input_features", "feature_attention_mask")


def host_lengths(inputs: dict[str, torch.Tensor], audio_token_id: int) -> dict[str, list[int]] | None:
    """Per row: mel frames and audio tokens, read from host tensors before they move to the device (read
    there, every `.tolist()` would wait for the device)."""
    fmask, ids = inputs.get("feature_attention_mask"), inputs.get("input_ids")
    if fmask is None or ids is None or fmask.is_cuda or ids.is_cuda:
        return None
    return {"n_mel": fmask.sum(-1).tolist(), "n_tok": (ids == audio_token_id).sum(-1).tolist()}


class AudioEmbedder:
    """Turns `{input_ids, input_features, feature_attention_mask, ...}` into `{input_ids, inputs_embeds, ...}`.

    `row_keys[i]`, when not None, names a row whose audio input is fully determined by the key (e.g.
    ``"zeros"``, made ``"zeros:<mel frames>"`` here); its projected features are computed once and reused for every later row with the
    same key."""

    def __init__(self, module: Any, arch: ArchSpec, model_name: str, max_memo: int = 256) -> None:
        if arch.encoder != "qwen2_audio":
            raise SteerAudioError(f"no fast audio path for architecture {arch.key!r}")
        self.tower = resolve(module, arch.audio_tower, model_name)
        self.projector = resolve(module, arch.projector, model_name)
        self.embed = module.get_input_embeddings()
        self.audio_token_id = int(getattr(module.config, arch.audio_token_attr))
        self.memo: dict[str, torch.Tensor] = {}
        self.max_memo = max_memo
        self.encoded_rows = 0  # rows that went through the encoder (for tests and benchmarks)

    @torch.no_grad()
    def __call__(
        self,
        inputs: dict[str, torch.Tensor],
        row_keys: list[str | None] | None = None,
        lengths: dict[str, list[int]] | None = None,
    ) -> dict[str, torch.Tensor]:
        """`lengths` ({"n_mel", "n_tok"} per row, from `host_lengths`) spares the device round trips."""
        if "input_features" not in inputs:
            return inputs  # a text-only batch (the `drop` negative)
        ids = inputs["input_ids"]
        feats, fmask = inputs["input_features"], inputs["feature_attention_mask"]
        n = ids.shape[0]
        if row_keys is not None and len(row_keys) != n:
            raise SteerAudioError(f"row_keys has {len(row_keys)} entries for {n} rows")
        # a keyed row's encoder input is fixed by its key and its length; an unkeyed row by its features, so
        # rows of one batch with the same clip (listen-bench's twins: one clip under three prompts) share one
        n_mel = lengths["n_mel"] if lengths is not None else fmask.sum(-1).tolist()
        keys = [content_key(feats, i, int(n_mel[i])) for i in range(n)]
        if row_keys is not None and any(k is not None for k in row_keys):
            keys = [keys[i] if k is None else f"{k}:{int(n_mel[i])}" for i, k in enumerate(row_keys)]
        found = {k: self.memo[k] for k in set(keys) if k in self.memo}
        first = {k: i for i, k in reversed(list(enumerate(keys))) if k not in found}
        if first:
            todo = sorted(first.values())
            encoded = self.encode(
                take_rows(feats, todo), take_rows(fmask, todo), [int(n_mel[i]) for i in todo]
            )
            for i, f in zip(todo, encoded, strict=True):
                found[keys[i]] = f
                if not keys[i].startswith(("row:", "feat:")) and len(self.memo) < self.max_memo:
                    self.memo[keys[i]] = f.clone()  # not a view of the whole batch
        per_row = [found[k] for k in keys]
        audio = ids == self.audio_token_id
        n_tok = lengths["n_tok"] if lengths is not None else audio.sum(-1).tolist()
        bad = [i for i in range(n) if per_row[i].shape[0] != n_tok[i]]
        if bad:
            i = bad[0]
            raise SteerAudioError(
                f"row {i}: {n_tok[i]} audio tokens but {per_row[i].shape[0]} audio features"
            )
        emb = self.embed(ids)
        emb = emb.masked_scatter(audio.unsqueeze(-1), torch.cat(per_row).to(emb.dtype))
        out = {k: v for k, v in inputs.items() if k not in AUDIO_KEYS}
        out["inputs_embeds"] = emb
        return out

    def encode(
        self, feats: torch.Tensor, fmask: torch.Tensor, n_mel: list[int] | None = None
    ) -> list[torch.Tensor]:
        """Projected audio features of each row, [n_tokens_i, d_model], on the clip's own length."""
        self.encoded_rows += feats.shape[0]
        x, out_len = tower_on_clip_length(self.tower, feats, fmask, n_mel=n_mel)
        x = self.projector(x)
        return [x[i, : int(out_len[i])] for i in range(x.shape[0])]


def take_rows(x: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """x[rows] without making the host wait for the device. Indexing a device tensor with a Python list copies
    the index to the device with a blocking copy, which waits for every kernel already queued (on the H200 the
    host then waited for the previous batch's whole trace before it could launch this batch's encoder). A
    run of consecutive rows (the usual case: the audio rows, silence rows reused) is a view; any other index
    goes to the device asynchronously."""
    if rows == list(range(rows[0], rows[0] + len(rows))):
        return x[rows[0] : rows[0] + len(rows)]
    index = torch.tensor(rows)
    return x.index_select(0, index.to(x.device, non_blocking=True) if x.is_cuda else index)


def content_key(feats: torch.Tensor, i: int, n_mel: int) -> str:
    """Row i's key within one batch: a digest of its log-mel input (host tensors), or the row itself when the
    features are on a device (hashing them there would wait for it). Not kept across batches."""
    if feats.is_cuda:
        return f"row:{i}"
    raw = feats[i].contiguous().view(torch.uint8).numpy().tobytes()
    return f"feat:{hashlib.blake2b(raw, digest_size=16).hexdigest()}:{n_mel}"


def tower_on_clip_length(
    tower: Any,
    feats: torch.Tensor,
    fmask: torch.Tensor,
    bucket: int = BUCKET,
    n_mel: list[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Qwen2-Audio's Whisper encoder (`Qwen2AudioEncoder.forward`, same modules and key mask) run on each
    batch's longest clip instead of the padded window. Returns ([B, T, d] outputs, [B] valid lengths on the
    host). `n_mel` (mel frames per row, known on the host) avoids reading the lengths back from the device."""
    x, mask, out_len = encoder_inputs(tower, feats, fmask, n_mel, bucket)
    return tower_body(tower, x, mask), out_len


def encoder_inputs(
    tower: Any,
    feats: torch.Tensor,
    fmask: torch.Tensor,
    n_mel: list[int] | None = None,
    bucket: int = BUCKET,
    no_sync: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """The clip-length encoder's inputs: (the trimmed mel frames on the tower's device and dtype, the key mask
    (None: every key), [B] valid output lengths on the host). The mask is built where the frames are, or, with
    `no_sync`, on the host (transformers' same function, from host tensors: on a device it reads the mask back
    to decide whether it may drop it) and the frames are copied without waiting; the caller moves that mask."""
    lens = torch.tensor(n_mel) if n_mel is not None else fmask.sum(-1).cpu()
    feat_len, out_len = tower._get_feat_extract_output_lengths(lens)
    m = trimmed_frames(int(feat_len.max()), feats.shape[-1], bucket)
    w = tower.conv1.weight
    x = feats[..., :m].to(device=w.device, dtype=w.dtype, non_blocking=no_sync)
    t = conv_frames(m)
    where = torch.device("cpu") if no_sync else x.device
    keep = (torch.arange(t)[None, :] < feat_len[:, None]).long().to(where)
    embeds = torch.empty(x.shape[0], t, 0, dtype=x.dtype, device=where)
    mask = create_bidirectional_mask(config=tower.config, inputs_embeds=embeds, attention_mask=keep)
    return x, mask, out_len


def tower_body(tower: Any, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """`Qwen2AudioEncoder.forward` from the trimmed mel frames `x` [B, n_mel, m] (the tower's dtype and device)
    to its final layer norm, under the key `mask` (None: every key): [B, T, d]."""
    x = torch.nn.functional.gelu(tower.conv1(x))
    x = torch.nn.functional.gelu(tower.conv2(x)).permute(0, 2, 1)
    x = x + tower.embed_positions.weight[: x.shape[1]]
    for layer in tower.layers:
        x = layer(x, mask)
    x = tower.avg_pooler(x.permute(0, 2, 1)).permute(0, 2, 1)
    return tower.layer_norm(x)  # type: ignore[no-any-return]


def conv_frames(n_mel: int) -> int:
    """Frames after the encoder's convolutions (conv2 has stride 2, padding 1, kernel 3) of `n_mel` mel frames."""
    return (n_mel - 1) // 2 + 1


def trimmed_frames(longest_conv_frames: int, window_frames: int, bucket: int = BUCKET) -> int:
    """Mel frames the clip-length encoder reads for a batch whose longest clip has `longest_conv_frames`
    frames after the convolutions: conv2 frame j reads mel frames up to 2j + 2, so one padded frame past the
    last valid one, rounded up to a whole bucket so that batches of similar length share kernel shapes
    (the extra keys are masked)."""
    need = 2 * longest_conv_frames + 1
    return min(window_frames, -(-need // bucket) * bucket)


def clip_samples(feature_extractor: Any, longest: int) -> int:
    """Samples to pad a batch whose longest clip has `longest` samples to, so that every mel frame the clip-length
    encoder reads (the batch's `trimmed_frames`) is the frame the whole window gives: the padded batch reaches
    ceil(n_fft / 2 hop) + 1 frames past the last frame read, so no frame read has an STFT window (`n_fft` samples
    centred on j * hop) that touches the end's reflection padding, and the per-clip log-mel ceiling (its
    maximum) never comes from padding. A 10 s clip then makes 1102 frames instead of the 30 s window's 3000 (the
    features' STFT, read-back and copies shrink with it). Whole windows stay whole."""
    hop, window = int(feature_extractor.hop_length), int(feature_extractor.n_samples)
    frames = trimmed_frames(conv_frames(-(-longest // hop)), window // hop)
    margin = -(-int(feature_extractor.n_fft) // (2 * hop)) + 1
    return min(window, (frames + margin) * hop)


def dithers(feature_extractor: Any) -> bool:
    """Whether the feature extractor adds random dither to the waveform (its features are then not a function
    of the audio alone)."""
    return float(getattr(feature_extractor, "dither", 0.0) or 0.0) != 0.0


def silence_key(wav: Any, feature_extractor: Any) -> str | None:
    """ "zeros" for an all-zero clip, whose log-mel input is the same constant for every length (the embedder
    adds the length in mel frames), else None. None too when the feature extractor dithers."""
    import numpy as np

    if dithers(feature_extractor):
        return None
    a = np.asarray(wav)
    return "zeros" if a.size and not a.any() else None
