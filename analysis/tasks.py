"""The tasks a ratings file holds and what a 2-AFC trial shows beside its queries.

Fixed values the loader, the analysis and the command line share; this module imports nothing
heavy, so the command line can offer them as choices without loading pandas. The reference
kinds mirror the study's (`synthetic`, `natural`, `none`), which the ratings-file contract
does not list, and the analysis may import nothing else of the site.
"""

from __future__ import annotations

from service.studies.ratings_file import TASKS

RATING, AFC = TASKS  # the yes/no rating task and the two-alternative forced choice
REFERENCES = ("synthetic", "natural", "none")  # what a 2-AFC trial shows beside its queries
