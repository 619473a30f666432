"""The assistant layer: config, Ollama client layer, agent loop, UI and MCP server."""
