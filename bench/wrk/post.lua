-- POST load: every request creates a widget. The JSON:API body comes from BENCH_WRK_BODY, so the
-- benchmark owns it in one place (bench/load.py); the token and Accept header come from -H flags.
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "report.lua")

wrk.method = "POST"
wrk.body = os.getenv("BENCH_WRK_BODY")
wrk.headers["Content-Type"] = "application/vnd.api+json"
