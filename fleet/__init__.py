"""The fleet view: which services made from this template lag the template and the shared core,
and bringing them up to date (`fleet report`, `fleet update`)."""
