"""Generation: validated job requests, jobs, the shard lease queue and the Fabric worker."""
