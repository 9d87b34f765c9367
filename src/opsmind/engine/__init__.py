"""The engine: wires the stages of the data flow together on one clock."""

from opsmind.engine.engine import Engine

__all__ = ["Engine"]
