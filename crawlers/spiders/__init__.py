"""Spiders: one per kind of public source."""
