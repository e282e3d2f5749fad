"""The exceptions a user can fix by changing the inputs."""


class InputError(ValueError):
    """The inputs cannot be read as given: a pattern matches nothing, a path does not exist, a file type is
    unsupported, or a needed package is missing. Raised at pipeline construction where possible."""


class InputFileError(InputError):
    """A whole input file is unreadable (truncated or corrupt compression, a corrupt Parquet or Arrow file).

    The message starts with the file's path.
    """
