"""OpsMind: an open-source AI operations engine.

Nothing happens at import time: no registries, no configuration reads, no threads. Everything is built
by `opsmind.engine.Engine` from an explicit `Settings` object and an injected `Clock`.
"""

__version__ = "0.1.0"
