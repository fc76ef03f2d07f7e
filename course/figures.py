"""The course's figures: one way to make, lay out and hand back a matplotlib figure.

Every plotting helper of the lesson labs returns a :class:`matplotlib.figure.Figure` that is
not registered with pyplot, so a notebook shows it once, as the cell's value (a pyplot figure
would be shown a second time at the end of the cell), and no figure piles up in pyplot's list.
The exception is ``pyplot=True``: a figure a lesson shows with ``fig = ...; plt.show()``
(``troubleshoot.draw_export_pipelines``, ``formats.FormatComparison.plot``, ``Progress.plot``).
Colours come from :mod:`course.palette`.

Example::

    >>> from course.palette import BLUE
    >>> fig, ax = axes(figsize=(4, 2))
    >>> _ = ax.plot([0, 1], [1, 0], color=BLUE, label="falling")
    >>> _ = legend_below(ax, ncol=1)
    >>> finish(fig) is fig, len(fig.axes)
    (True, 1)
    >>> fig, (left, right) = figure((6, 2), ncols=2)
    >>> left.figure is right.figure is fig
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from course.palette import OKABE_ITO

if TYPE_CHECKING:  # pragma: no cover - imported for annotations only
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.legend import Legend

__all__ = ["OKABE_ITO", "axes", "figure", "finish", "legend_below"]


def figure(
    figsize: tuple[float, float],
    nrows: int = 1,
    ncols: int = 1,
    *,
    pyplot: bool = False,
    **kwargs: Any,
):
    """A new figure of ``figsize`` inches and its grid of axes: one ``Axes`` for a 1x1 grid,
    else the array ``Figure.subplots`` returns (``kwargs`` go to it: ``sharey``,
    ``gridspec_kw``, ``squeeze``...). Not registered with pyplot unless ``pyplot=True``."""
    if pyplot:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=figsize)
    else:
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def axes(ax: Axes | None = None, figsize: tuple[float, float] = (6.4, 3.4)) -> tuple[Figure, Any]:
    """``ax``'s figure and ``ax`` when the caller passes axes to draw on, else a new figure of
    ``figsize`` with one axes: the ``ax=None`` argument every plotting helper takes."""
    if ax is not None:
        return ax.figure, ax
    return figure(figsize)


def legend_below(
    ax: Axes,
    handles: Sequence[Any] | None = None,
    *,
    offset: float = -0.2,
    ncol: int = 3,
    fontsize: float | str = 8,
) -> Legend:
    """A frameless legend centred under ``ax``, its top at ``offset`` (axes fraction, negative:
    below the axis labels); ``handles`` default to the labelled artists of ``ax``."""
    extra = {} if handles is None else {"handles": list(handles)}
    return ax.legend(
        **extra,
        loc="upper center",
        bbox_to_anchor=(0.5, offset),
        ncol=ncol,
        fontsize=fontsize,
        frameon=False,
    )


def finish(fig: Figure, *, title: str | None = None, rect: Sequence[float] | None = None) -> Figure:
    """Lay ``fig`` out (``tight_layout``, within ``rect`` when given), with ``title`` over all
    its axes when given, and return it: the last line of every plotting helper."""
    if title:
        fig.suptitle(title)
    if rect is None:
        fig.tight_layout()
    else:
        fig.tight_layout(rect=tuple(rect))
    return fig
