"""Flower test app: digits, numpy logistic regression, verde's strategy and attack mods."""
