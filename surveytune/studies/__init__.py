"""The study: budgets and the runner that takes a run folder through its stages."""
