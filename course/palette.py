"""The course's colours: one palette for every plot, safe for colour-blind readers.

Example::

    >>> from course.palette import OKABE_ITO
    >>> OKABE_ITO[0]
    '#0072B2'
"""

from __future__ import annotations

__all__ = ["OKABE_ITO"]

#: The Okabe-Ito palette: distinguishable with the common forms of colour blindness
#: (blue, orange, bluish green, vermillion, reddish purple, sky blue, yellow, black).
OKABE_ITO: tuple[str, ...] = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#000000",
)
