"""musiclord benchmarks: `python -m benchmarks.run_all` (or `make bench`). Never run by the tests."""
