"""The attack corpus: one module per family of attack, each case rejected or neutralised."""
