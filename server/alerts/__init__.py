"""Alerting on stored profile totals: rules, their evaluation, alert states and notifications."""
