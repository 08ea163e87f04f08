"""Alembic migrations of the fvlab schema; `fvlab db upgrade` runs them."""
