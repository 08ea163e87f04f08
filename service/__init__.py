"""fvlab's generation service: settings, database, image store, job queue, worker and CLI."""
