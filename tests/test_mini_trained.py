"""The shipped trained mini beats chance on neutral items of listen-bench's test split."""

from __future__ import annotations

import shutil

import pytest
import torch

from steer_audio.bench import listen_bench as lb
from steer_audio.models.mini import assemble

pytestmark = pytest.mark.mini

N_TEST = 12  # base items per template -> 120 neutral items (the same items as results/mini's test12 numbers)


@pytest.fixture(scope="module")
def neutral_predictions(tmp_path_factory):
    if not assemble.is_set_up():
        pytest.skip("mini cache absent; run scripts/setup_mini.sh (steer-audio mini-setup)")
    if not (assemble.ASSETS_DIR / assemble.PROJECTOR_FILE).is_file():
        pytest.skip("no trained projector in steer_audio/assets/mini")
    if (
        any(shutil.which(t) is None for t in ("sox", "espeak-ng", "fluidsynth"))
        or not lb.ALLISON_DIR.is_dir()
    ):
        pytest.skip("listen-bench tools missing (scripts/setup_mini.sh)")
    from steer_audio.train.train_mini import PromptCache, build_encoder_cache, predict

    torch.set_num_threads(2)
    data = tmp_path_factory.mktemp("lb")
    lb.generate(data, lb.BenchConfig(n_train=0, n_calib=0, n_test=N_TEST))
    rows = lb.load_items(data, split="test", condition="neutral")
    model, proc = assemble.load_mini()
    feats = build_encoder_cache(model, proc, data, rows, data / "enc.safetensors")
    return predict(model, PromptCache(proc), feats, data, rows)


def test_trained_mini_beats_chance_on_neutral(neutral_predictions) -> None:
    from scipy.stats import binomtest

    n = len(neutral_predictions)
    k = sum(p["correct"] for p in neutral_predictions)
    assert n == 10 * N_TEST
    # every item has 4 choices: chance is 0.25 (one-sided binomial test)
    assert binomtest(k, n, 0.25, alternative="greater").pvalue < 0.01, f"{k}/{n} correct"
