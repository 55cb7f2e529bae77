"""Fine-tuning: the recipe (configuration and loop), batches, losses, checkpoint choice on
validation data, memory planning and multi-process training."""
