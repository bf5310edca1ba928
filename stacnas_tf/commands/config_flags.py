"""One flag per field of a config dataclass, `--config=FILE` (a run's
config.json) to start from, and the resolved settings printed at start.

Flags left unset take the value of `--config` when given, else of `--preset`,
so every field is reachable without a flag list kept by hand.
"""

from __future__ import annotations

import dataclasses
import json

from absl import flags

from stacnas_tf import files

# Fields whose values are not a single flag: set elsewhere (--groups, --genotype
# read from files) or recorded from the data (class_names).
_NOT_FLAGS = ("groups", "genotype", "class_names")


def _kind(field: dataclasses.Field) -> tuple[str, bool]:
    """The flag type of a field and whether None is one of its values, from its
    annotation (a string: the config modules use `from __future__ import annotations`)."""
    annotation = str(field.type).replace(" ", "")
    for kind in ("bool", "int", "float", "str"):
        if annotation in (kind, f"{kind}|None"):
            return kind, annotation != kind
    raise TypeError(f"no flag type for {field.name}: {field.type}")


class _NoneOr(flags.ArgumentParser):
    """`none` (any case) as None, anything else as `parser` reads it: without it a
    preset's value of an optional field (8,192 training examples, a square image
    size) could not be cleared from the command line."""

    def __init__(self, parser: flags.ArgumentParser):
        self._parser = parser
        # What --help shows after the flag's text, as "(an integer or none)".
        self.syntactic_help = f"{parser.syntactic_help or 'a string'} or none"

    def parse(self, argument):
        if isinstance(argument, str) and argument.strip().lower() == "none":
            return None
        try:
            return self._parser.parse(argument)
        except ValueError as e:
            raise ValueError(f"expected {self.syntactic_help}, got {argument!r} ({e})") from e

    def flag_type(self) -> str:
        return f"{self._parser.flag_type()} or none"


def define(config_class, help_texts: dict, skip: tuple = ()) -> dict:
    """Defines `--FIELD` for every field of `config_class` (default None: unset);
    returns {field: flag holder}."""
    holders = {}
    for field in dataclasses.fields(config_class):
        if field.name in _NOT_FLAGS or field.name in skip:
            continue
        kind, optional = _kind(field)
        text = help_texts.get(field.name, f"{config_class.__name__}.{field.name}.")
        if optional and kind != "bool":
            parser = {"int": flags.IntegerParser, "float": flags.FloatParser,
                      "str": flags.ArgumentParser}[kind]()
            holders[field.name] = flags.DEFINE(_NoneOr(parser), field.name, None, text)
            continue
        define_flag = {"bool": flags.DEFINE_bool, "int": flags.DEFINE_integer,
                       "float": flags.DEFINE_float, "str": flags.DEFINE_string}[kind]
        holders[field.name] = define_flag(field.name, None, text)
    return holders


CONFIG = flags.DEFINE_string(
    "config", None,
    "A run's config.json to start from (reproduces that run); flags given override it and "
    "--preset is not used.")


def base_config(config_class, presets: dict, preset_flag):
    """The config that unset flags take their values from: --config's file, or
    the preset."""
    if not CONFIG.value:
        return presets[preset_flag.value]
    if preset_flag.present:
        raise ValueError("--config and --preset both give the settings to start from; pass one.")
    path = files.require_file(files.user_path(CONFIG.value), "--config", "a run's config.json")
    try:
        value = files.read_json(path)
    except ValueError as e:
        raise ValueError(f"--config: {e}; expected a run's config.json.") from e
    if not isinstance(value, dict):
        raise ValueError(f"--config: {path} holds no settings (a JSON object); expected a run's "
                         "config.json.")
    try:
        return config_class.from_dict(value, source=f"--config: {path}")
    except TypeError as e:
        raise ValueError(f"--config: {path}: {e}") from e


def overrides(holders: dict) -> dict:
    """{field: value} of the flags the user set (`--image_size=none` sets None)."""
    return {name: holder.value for name, holder in holders.items() if holder.present}


def describe(config) -> str:
    """The settings as one `name=value` line each, for the start of a run."""
    return "\n".join(f"  {name}={json.dumps(value)}" for name, value in config.to_dict().items())
