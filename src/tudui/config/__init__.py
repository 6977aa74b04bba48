"""Config values and the code they configure: the base every layer above reads config with.

- :mod:`tudui.config.types`: types with ranges, written in the consumers' signatures
- :mod:`tudui.config.arguments`: a config group's values against a consumer's signature
- :mod:`tudui.config.build`: config nodes as plain values, and the objects they describe
- :mod:`tudui.config.resolvers`: the resolvers conf/ uses, registered here

The whole config is checked in :mod:`tudui.runs.check`, before any folder is made by
:mod:`tudui.cli.hydra`.
"""

from tudui.config import resolvers  # noqa: F401 - registers ${tudui.run_name:...}
