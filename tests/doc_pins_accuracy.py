"""Pins for docs/accuracy.md (see doc_pins.py)."""

from __future__ import annotations

from doc_pins import Pin, Table

PINS: list[Pin | Table] = []
