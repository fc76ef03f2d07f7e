"""The course's colours: one palette for every plot, safe for colour-blind readers.

Example::

    >>> from course.palette import OKABE_ITO
    >>> OKABE_ITO[0]
    '#0072B2'
"""

from __future__ import annotations

__all__ = [
    "BLACK",
    "BLUE",
    "DARK_GREY",
    "GREEN",
    "GREY",
    "LIGHT_GREY",
    "OKABE_ITO",
    "ORANGE",
    "PALE_GREY",
    "PURPLE",
    "SKY",
    "VERMILLION",
    "WHITE",
    "YELLOW",
]

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

#: The same colours by name, for code that means one colour (a pass is green, a failure
#: vermillion): use these rather than hex copies.
BLUE, ORANGE, GREEN, VERMILLION, PURPLE, SKY, YELLOW, BLACK = OKABE_ITO

#: Neutrals, for what is no category of its own: text on dark fills (white), secondary text
#: (dark grey, grey), background marks such as "not started" or "whole run" (light, pale grey).
WHITE, PALE_GREY, LIGHT_GREY, GREY, DARK_GREY = (
    "#FFFFFF",
    "#DDDDDD",
    "#BBBBBB",
    "#666666",
    "#444444",
)
