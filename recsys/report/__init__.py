"""Reports: a single run's ``report.md``, and comparisons across many runs."""
