"""Comparison tables and reports: load fine-tuning runs, pair and average them, render tables and plots."""
