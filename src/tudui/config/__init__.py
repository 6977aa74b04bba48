"""The config of a run: checked against the code that consumes it, before anything starts.

- :mod:`tudui.config.types`: types with ranges, written in the consumers' signatures
- :mod:`tudui.config.arguments`: a config group's values against a consumer's signature
- :mod:`tudui.config.check`: every group of a composed config, in one message
- :mod:`tudui.config.hydra`: the Hydra side: the check before any folder, one-line errors
- :mod:`tudui.config.resolvers`: the resolvers conf/ uses, registered here
"""

from tudui.config import resolvers  # noqa: F401 - registers ${tudui.run_name:...}
