"""Two-pass capture: every example through the model with its audio and with its negative (silence)."""
