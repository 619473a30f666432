"""Names the assistant layer imports from ``tools.catalog`` (kept so its import lines need not change).

The catalog code lives by responsibility: tools/data_files.py (loading), tools/chips.py, tools/models.py,
tools/quants.py and tools/sizes.py. New code imports from those modules.
"""

from tools.chips import chip_bins
from tools.models import catalog, is_catalog_model

__all__ = ["catalog", "chip_bins", "is_catalog_model"]
