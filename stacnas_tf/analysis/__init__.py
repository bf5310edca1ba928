"""Analyses behind StacNAS design choices: operator correlation and gradient confusion."""
