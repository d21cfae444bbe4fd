"""Training of mini's trained parts."""
