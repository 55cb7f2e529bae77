"""What turns data into distributions without a language model, and how they are scored: metrics,
baselines, priors, calibration, option-order checks, bootstrap intervals, prompt templates."""
