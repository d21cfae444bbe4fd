"""User-facing errors: one clear message, never a traceback."""


class SteerAudioError(Exception):
    """An error the user can fix (bad input, unknown model, inconsistent runs)."""
