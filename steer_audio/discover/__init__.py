"""Stage: capture cache -> head scores r, specialist set S_K, listening score and its two checks."""
