"""Live event streams over the durable event log, and its retention."""
