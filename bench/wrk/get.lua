-- GET load: the URL and headers come from wrk's command line; this adds the report line.
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "report.lua")
