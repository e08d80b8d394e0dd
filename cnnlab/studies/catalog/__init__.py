"""One module per case study, each defining ``STUDY``; listed alphabetically."""
