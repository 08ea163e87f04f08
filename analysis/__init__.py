"""fvlab's analysis: from exported ratings to a verdict, a report, and power by simulation.

Entry points: `analysis.load` (read and validate ratings), `analysis.pipeline.analyze` (every
estimate and the verdict as the results.json dictionary), `analysis.report.write_report`, and
`analysis.simulate` / `analysis.power` for synthetic crowds with a known truth.
"""
