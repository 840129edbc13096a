"""Counterfactual obfuscation: region ranking, search strategies, extents and obfuscation styles."""

from veil.counterfactual.extent import DEFAULT_EXTENT, EXTENTS, ExtentOutcome, extend
from veil.counterfactual.regions import describe_regions, rank_regions, region_scores, regions_mask
from veil.counterfactual.search import SEARCHES, SearchOutcome, is_safe, search
from veil.counterfactual.styles import STYLES, fully_obscured, obfuscate, stylize

__all__ = [
    "DEFAULT_EXTENT",
    "EXTENTS",
    "ExtentOutcome",
    "SEARCHES",
    "STYLES",
    "SearchOutcome",
    "describe_regions",
    "extend",
    "fully_obscured",
    "is_safe",
    "obfuscate",
    "rank_regions",
    "region_scores",
    "regions_mask",
    "search",
    "stylize",
]
