"""`python -m steer_audio.steer.methods`: print the README's method list, generated from the registry."""

import sys

from .registry import markdown_list

sys.stdout.write(markdown_list() + "\n")
