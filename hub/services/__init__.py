"""I/O around the core: the client directory, inbox, pipeline, runs, outbox notes, write-back,
polling, webhook intake, scheduled launches, overdue steps, dead letters, tokens."""
