"""``python -m assistant.mcp``: serve the advisor's tools to other agents over MCP.

stdio is the default because that is what Claude Desktop / Claude Code / Cursor launch; ``--transport http``
serves streamable HTTP on 127.0.0.1 for clients that connect to a URL.
"""

from __future__ import annotations

import sys

from assistant.mcp.cli import main

if __name__ == "__main__":
    sys.exit(main())
