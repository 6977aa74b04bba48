"""The entry points' side of tudui: Hydra's glue (checks before any folder, one-line errors,
group options by name, the groups' defaults from the code) and the command line of a
resume."""
