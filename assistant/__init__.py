"""The assistant layer: config, Ollama client layer, agent loop, UI and MCP server."""

from knowledge import proxy_env

# `import ollama` / `import gradio` anywhere below run with proxy variables set aside (knowledge/proxy_env.py)
proxy_env.install()
