"""Reports: report.json as data (:mod:`.build`, :mod:`.stats`, :mod:`.evidence`,
:mod:`.compare`), the files of an output directory (:mod:`.write`), and the renderers that
turn that data into text (:mod:`.render`: Markdown, HTML, the terminal)."""
