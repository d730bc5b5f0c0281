-- wrk script: every request is an absolute-form proxy request (RFC 9112 section 3.2.2).
-- ORIGIN (environment) is the URL fetched through the proxy, e.g. http://127.0.0.1:18200/small;
-- the URL given to wrk itself is the proxy. The request is static (no per-request Lua).
local origin = os.getenv("ORIGIN") or error("set ORIGIN=http://host:port/path")
local authority = origin:match("^http://([^/]+)") or error("ORIGIN must be an http:// URL")
wrk.method = "GET"
wrk.path = origin
wrk.headers["Host"] = authority
