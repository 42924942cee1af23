"""Synthetic worlds: a power-law social graph generated with numpy, bulk-loaded, with its timelines."""
