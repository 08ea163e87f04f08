"""The tasks a ratings file holds and what a 2-AFC trial shows beside its queries.

Fixed values the loader, the analysis and the command line share, all from the ratings-file
contract; this module imports nothing heavy, so the command line can offer them as choices
without loading pandas.
"""

from __future__ import annotations

from service.studies.ratings_file import REFERENCES, TASKS

__all__ = ["AFC", "RATING", "REFERENCES"]

RATING, AFC = TASKS  # the yes/no rating task and the two-alternative forced choice
