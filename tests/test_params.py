"""The parameter-constraint table: what each constraint allows and the one-line refusals."""

from __future__ import annotations

import math

import pytest

from surveytune.methods.params import Interval, Options, ParameterError, check_params, flag_name

TABLE = {"batch_size": Interval(1, integer=True), "rate": Interval(0, closed="neither"),
         "dropout": Interval(0, 1, closed="left"), "loss": Options(("js", "kl")),
         "max_steps": (None, Interval(1, integer=True))}


def test_values_inside_the_table_pass():
    check_params({"batch_size": 1, "rate": 1e-9, "dropout": 0.0, "loss": "kl",
                  "max_steps": None}, TABLE)
    check_params({"max_steps": 3, "other": object()}, TABLE)  # names not in the table: free


@pytest.mark.parametrize(("name", "value", "message"), [
    ("batch_size", 0, "must be at least 1, got 0"),
    ("batch_size", 2.5, "must be a whole number, got 2.5"),
    ("batch_size", True, "must be a number, got True"),
    ("rate", 0, "must be more than 0, got 0"),
    ("rate", math.nan, "must be a finite number, got nan"),
    ("dropout", 1.0, "must be less than 1, got 1"),
    ("loss", "emd", "must be one of js, kl, got 'emd'"),
    ("max_steps", 0, "must be at least 1, got 0"),
    ("batch_size", None, "must be given, got None"),
])
def test_a_value_outside_is_refused_naming_the_parameter(name, value, message):
    with pytest.raises(ParameterError) as caught:
        check_params({name: value}, TABLE, where="TrainConfig")
    assert str(caught.value) == f"TrainConfig.{name}: {message}"
    assert caught.value.parameter == name and "\n" not in str(caught.value)


def test_the_first_bad_value_in_table_order_is_named():
    with pytest.raises(ParameterError, match=r"^rate: "):
        check_params({"loss": "emd", "rate": -1}, TABLE)


def test_flag_names():
    assert flag_name("learning_rate") == "--learning-rate" and flag_name("seed") == "--seed"
