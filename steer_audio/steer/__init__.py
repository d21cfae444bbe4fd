"""Stage: steering directions (Eqs. 4-9) and option scoring under an intervention."""
