"""Views of a finished run: the self-contained HTML report and the terminal view of one document."""
