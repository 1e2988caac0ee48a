"""Renderers: report data in, text out (Markdown, one offline HTML page, the terminal)."""
