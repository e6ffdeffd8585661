"""msphub test suite (a package, so test modules in subfolders may share basenames)."""
