"""Benchmarks of the template against their baselines: `make bench` (`python -m bench --help`).

Nothing here is a timed test. Every figure is a median with its min and max over repeated runs,
printed beside a baseline measured in the same run on the same machine (the tool's own start-up,
bare FastAPI, `import fastapi`...), so a busy or slow machine shifts both and the comparison holds.
Results go to stdout and, as JSON and Markdown, to bench/results/ (git-ignored).
"""
