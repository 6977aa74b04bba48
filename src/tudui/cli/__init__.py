"""The entry points' side of tudui: Hydra's glue (checks before any folder, one-line errors,
group options by name) and the command line of a resume. Importing it registers the
config groups' defaults from the code (:mod:`tudui.cli.defaults`) before any composition."""

from tudui.cli.defaults import register_code_defaults

register_code_defaults()
