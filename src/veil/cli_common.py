"""What every ``veil`` command shell shares: the stderr console and the one user-error exit.

The shells (:mod:`veil.cli`, :mod:`veil.cli_train`, :mod:`veil.cli_explain`,
:mod:`veil.cli_moderator`, :mod:`veil.cli_bench`) turn a :class:`~veil.errors.VeilError` into
one line on stderr and exit code 2 through :func:`fail`, so that every command reports user
errors the same way.
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["err", "fail"]

#: Progress, status and errors go to stderr; stdout stays for data.
err = Console(stderr=True)


def fail(exc: BaseException | str) -> NoReturn:
    """Print ``error: <exc>`` as one line on stderr and exit with code 2 (a user error).

    Examples
    --------
    >>> import pytest
    >>> with pytest.raises(typer.Exit):
    ...     fail("bad value")  # doctest: +SKIP
    """
    err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)
