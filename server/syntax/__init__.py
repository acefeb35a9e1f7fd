"""What users type, parsed and checked in one place: label pairs and label limits, times and durations."""
