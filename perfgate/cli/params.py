"""Commands built from the options table: each command's click options are its options'
declarations (perfgate/options), and its callback gets them as the API names them."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

import click

from perfgate.cli.errors import ErrorHandler, command_errors
from perfgate.options import Option, options_for, spell_for


def click_option(option: Option) -> click.Option:
    """The click option of one declaration; its parameter is named by the API keyword."""
    kwargs: dict[str, Any] = {"help": option.help, "metavar": option.metavar, "multiple": option.multiple,
                              "required": option.required, "show_default": option.show_default}  # fmt: skip
    if option.is_flag:
        return click.Option([*option.flags, option.name], is_flag=True, **kwargs)
    if option.default is not None:  # an explicit None would be a default to click 8.3+, and satisfy required=True
        kwargs["default"] = option.default
    return click.Option([*option.flags, option.name], type=_type(option), **kwargs)


def _type(option: Option) -> Any:
    if option.choices is not None:
        return click.Choice(option.choices() if callable(option.choices) else option.choices)
    bounded = option.minimum is not None or option.maximum is not None
    if option.type is int and bounded:
        return click.IntRange(min=option.minimum, max=option.maximum)
    if option.type is float and bounded:
        return click.FloatRange(min=option.minimum, max=option.maximum, min_open=option.min_open)
    return option.type


def build(
    name: str, callback: Callable[..., int], on_error: ErrorHandler | None = None, arguments: Sequence[click.Argument] = ()
) -> click.Command:
    """The click command ``name``: ``arguments``, then its options from the table; whatever
    ``callback`` raises ends as one line in the command's flags and an exit code."""

    def spell(api_name: str, value: str | None) -> str:
        return spell_for(name)(api_name, value)

    params = [*arguments, *(click_option(option) for option in options_for(name))]
    return click.Command(name, callback=command_errors(spell, on_error)(callback), params=params, help=inspect.getdoc(callback))
