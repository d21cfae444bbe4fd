"""Data: MMAU-format examples, audio loading, negatives, prompts and option scoring tokens."""
