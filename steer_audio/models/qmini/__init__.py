"""`qmini`: Whisper-base's encoder + Qwen2.5-Coder-0.5B-Instruct (a Qwen2 decoder, the LM family of
Qwen2-Audio) inside the real ``Qwen2AudioForConditionalGeneration``, with a trained 512 → 896 projector."""
