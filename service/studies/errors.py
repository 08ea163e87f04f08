"""The error every study operation raises for bad settings, in a module of its own so that the
study checks of both tasks (`service.studies.study`, `service.studies.afc_study`) share it."""

from __future__ import annotations


class StudyError(ValueError):
    """A study setting or operation is invalid; the message names the field and the problem."""
