"""steer-audio: audio-specialist heads and audio-minus-silence steering for audio-language models.

The data flow is the architecture; one sub-package per stage:

    data/      examples (MMAU-format JSON, audio, negatives, prompts)      -> Example lists
    models/    explicit per-architecture table, registry, nnsight wrapper  -> AudioLM
    capture/   two-pass (audio, negative) nnsight capture                   -> capture cache (safetensors shards)
    discover/  head scores r, specialist set S_K, listening score, checks   -> heads.json, summary.json
    steer/     steering directions and cached / forward scoring             -> per-example option scores
    evaluate/  methods x alpha selection on calibration, statistics         -> predictions.jsonl, summary.json
    report/    Markdown tables and PNG figures                              -> report.md, *.png
"""

__version__ = "0.1.0"
