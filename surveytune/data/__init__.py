"""Survey items and the files that hold them: the item type, readers and formats, the public
survey files, splits, world regions, and the run folder's typed records."""
