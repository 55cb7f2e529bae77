"""The run's report: results.md sections, report.html, charts and terminal tables."""
