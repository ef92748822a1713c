"""Tests import the command-line tools by file path; the loader lives with the tools' start-up code."""
from etcore.scripts import load_tool

__all__ = ["load_tool"]
