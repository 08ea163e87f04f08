"""gunicorn's settings for the annotation site, in one place for every way it is served:
`gunicorn -c python:annotate.gunicorn_conf 'annotate:create_app()'` (the Dockerfile,
docker-compose.yml, the README's deployment commands and `bench/web_load.py`); options given
on the command line after `-c` override these.
"""

workers = 4
# A thread waits on the database far more than it computes, and a session start waits its turn
# for the study's lock: with 4 threads a worker, a burst of starts held all of a worker's threads
# while that worker's other annotators' answers queued behind them (`bench/README.md`). Each
# thread has its own pooled database connection (`annotate.database.POOL`), so the site holds
# at most workers × (threads + 2) = 72 of PostgreSQL's default 100, leaving room for render
# workers and the command line.
threads = 16
# A gunicorn worker keeps every connection it accepts while the client keeps it alive, and the
# worker that wakes first accepts a burst of them: 200 browsers opening at once sat on 2 of the
# 4 workers (115 and 88 connections), which left half the site idle while one process (one
# core, for Python) served them all. Capping each worker's connections spreads them; with 4
# workers the cap still holds 256 clients at once (behind the proxy, far fewer connections).
worker_connections = 64
