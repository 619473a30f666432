"""MCP server: the advisor's tool registry served to other agents (Claude Desktop, Cursor, LangChain...).

``build_server(registry)`` publishes a registry; ``python -m assistant.mcp`` builds the full toolset from
settings and serves it over stdio (default) or streamable HTTP on 127.0.0.1.
"""

from assistant.mcp.server import DEFAULT_HTTP_PORT, SERVER_NAME, build_server

__all__ = ["DEFAULT_HTTP_PORT", "SERVER_NAME", "build_server"]
