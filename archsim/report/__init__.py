"""Reports: tidy tables, plots and Markdown/HTML documents."""
