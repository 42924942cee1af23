"""The capacity model (`homefeed capacity`): measured per-operation costs scaled to N daily users."""
