"""Stage: methods x alpha (chosen on calibration) -> predictions, accuracy, statistics."""
