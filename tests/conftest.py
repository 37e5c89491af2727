"""Shared test set-up."""

import os
import sys

# tests import their shared helpers (tests/_parity.py) by module name; with
# --import-mode=importlib the tests directory is not on sys.path by itself
sys.path.insert(0, os.path.dirname(__file__))
