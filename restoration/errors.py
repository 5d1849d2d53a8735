"""One exception family for the whole package.

The edges translate it: the CLI turns :class:`BadInputError` into exit status 2 and
:class:`ModelUnavailableError` into exit status 3 (one line on stderr, no traceback);
the Gradio app turns any :class:`RestorationError` into ``gr.Error``.
"""


class RestorationError(Exception):
    """Base class of every error this package raises on purpose."""

    exit_code = 1


class BadInputError(RestorationError, ValueError):
    """The caller's input breaks a stated constraint (audio, prompt, duration, option)."""

    exit_code = 2


class ModelUnavailableError(RestorationError, RuntimeError):
    """A model's weights cannot be loaded; the message names the model, its env variable and the fix."""

    exit_code = 3


class CancelledError(RestorationError):
    """The caller asked to stop (the app's "Stop" button, Ctrl-C); nothing was written."""

    exit_code = 130
