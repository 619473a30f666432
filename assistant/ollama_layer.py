"""Compatibility name: the Ollama layer is the package `assistant.ollama` now. Kept for the UI modules
(assistant/ui*.py, being split by another change) and their tests; new code imports `assistant.ollama`."""

from assistant.ollama import *  # noqa: F403
from assistant.ollama import __all__  # noqa: F401
