"""fvlab's analysis: from exported ratings to a verdict, a report, and power by simulation.

The public entry points::

    from analysis import AnalysisConfig, analyze, read_ratings, write_report

    result = analyze(read_ratings("ratings.csv"), AnalysisConfig())
    print(result.verdict.explanation)          # typed records (analysis.results)
    write_report(result, "out/")               # results.json (result.to_json()), report, figures

and, for synthetic crowds with a known truth, `analysis.simulate.simulate(CrowdSpec(...))` (a
2-AFC study: `analysis.simulate_afc.simulate_afc(AfcSpec(...))`) and `analysis.power.power(spec)`.
A sessions export for the 2-AFC time rules is read by `read_sessions` and passed to `analyze`.
Everything else is a helper of these. Names are imported on first use, so reading a ratings
file does not load the statistics and plotting libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analysis import power, simulate
    from analysis.estimate import Options
    from analysis.exclusions import ExclusionRule
    from analysis.load import RatingsError, read_ratings, read_sessions, validate
    from analysis.pipeline import AnalysisConfig, analyze
    from analysis.power import PowerResult
    from analysis.report import write_report
    from analysis.results import AnalysisResult
    from analysis.simulate import CrowdSpec
    from analysis.simulate_afc import AfcSpec

_HOMES = {
    "AfcSpec": "simulate_afc",
    "AnalysisConfig": "pipeline",
    "AnalysisResult": "results",
    "CrowdSpec": "simulate",
    "ExclusionRule": "exclusions",
    "Options": "estimate",
    "PowerResult": "power",
    "RatingsError": "load",
    "analyze": "pipeline",
    "read_ratings": "load",
    "read_sessions": "load",
    "validate": "load",
    "write_report": "report",
}
_MODULES = ("power", "simulate")  # entry-point modules: power.power(), simulate.simulate()
__all__ = [  # _HOMES' names and _MODULES, written out for the tools that read __all__
    "AfcSpec", "AnalysisConfig", "AnalysisResult", "CrowdSpec", "ExclusionRule", "Options",
    "PowerResult", "RatingsError", "analyze", "power", "read_ratings", "read_sessions",
    "simulate", "validate", "write_report",
]


def __getattr__(name: str) -> object:
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
