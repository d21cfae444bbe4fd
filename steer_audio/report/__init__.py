"""Stage: results -> Markdown report in the paper's layout and PNG figures."""
