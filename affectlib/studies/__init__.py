"""One module per notebook's study: its plan, how its runs execute, its report (DESIGN.md)."""
