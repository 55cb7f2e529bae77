"""One table of parameter constraints per configurable object, checked the same way by the
Python API and the command line (scikit-learn's ``_parameter_constraints`` is the model).

A table maps each parameter name to what it may be::

    CONSTRAINTS = {"batch_size": Interval(1, integer=True),
                   "learning_rate": Interval(0, closed="neither"),
                   "loss": Options(("js", "kl")),
                   "max_steps": (None, Interval(1, integer=True))}

A tuple lists alternatives; ``None`` in it allows the value None. :func:`check_params`
refuses the first value that fits none of them with a :class:`ParameterError` naming the
parameter: ``where`` says whose parameter ("TrainConfig"), and a command line that built the
object from its flags catches the error and names the flag instead (:func:`flag_name`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

from surveytune.data.items import DataError

__all__ = ["Constraint", "Interval", "Options", "ParameterError", "check_params", "flag_name"]


@dataclass(frozen=True)
class Interval:
    """A number from ``low`` to ``high`` (None: unbounded); ``closed`` says which ends are in."""

    low: float | None = None
    high: float | None = None
    closed: str = "both"  # "both", "left", "right" or "neither"
    integer: bool = False

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not in the interval (None when it is)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, got {value!r}"
        if self.integer and not isinstance(value, int):
            return f"must be a whole number, got {value!r}"
        if not math.isfinite(value):
            return f"must be a finite number, got {value}"
        low_in = self.closed in ("both", "left")
        high_in = self.closed in ("both", "right")
        if self.low is not None and (value < self.low or (value == self.low and not low_in)):
            return f"must be {'at least' if low_in else 'more than'} {self.low:g}, got {value:g}"
        if self.high is not None and (value > self.high or (value == self.high and not high_in)):
            return f"must be {'at most' if high_in else 'less than'} {self.high:g}, got {value:g}"
        return None


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values."""

    choices: tuple[Any, ...]

    def problem(self, value: Any) -> str | None:
        if value in self.choices:
            return None
        return f"must be one of {', '.join(map(str, self.choices))}, got {value!r}"


Constraint = Union[Interval, Options, None, tuple]


class ParameterError(DataError):
    """A parameter outside its constraints; ``parameter`` is its name in the table."""

    def __init__(self, message: str, *, parameter: str, where: str | None = None) -> None:
        self.parameter = parameter
        super().__init__(message, file=f"{where}.{parameter}" if where else parameter)


def _problem(value: Any, constraint: Constraint) -> str | None:
    alternatives = constraint if isinstance(constraint, tuple) else (constraint,)
    if value is None:
        return None if None in alternatives else "must be given, got None"
    problems = [c.problem(value) for c in alternatives if c is not None]
    if any(p is None for p in problems):
        return None
    return problems[0] if len(problems) == 1 else " or ".join(
        p.split(", got")[0] for p in problems) + f", got {value!r}"


def check_params(values: Mapping[str, Any], constraints: Mapping[str, Constraint], *,
                 where: str | None = None) -> None:
    """Refuse the first of ``values`` (in the table's order) that its constraint does not
    allow. Names missing from ``values`` are not checked."""
    for name, constraint in constraints.items():
        if name in values:
            problem = _problem(values[name], constraint)
            if problem is not None:
                raise ParameterError(problem, parameter=name, where=where)


def flag_name(parameter: str) -> str:
    """The command-line flag of a parameter: ``learning_rate`` -> ``--learning-rate``."""
    return "--" + parameter.replace("_", "-")
