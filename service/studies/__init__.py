"""Studies: creating and opening them, their progress, catch items and the exports."""
