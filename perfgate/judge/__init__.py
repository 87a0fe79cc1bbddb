"""From samples to a verdict: budgets, checks over the metric families, what would resolve
an undecided check, a saved report judged again or merged, and the warnings a run earns."""
