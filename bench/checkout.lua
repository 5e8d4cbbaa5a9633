-- Full guest checkouts as a browser without JavaScript makes them, for wrk:
--   product page, add to cart (303), cart page, checkout page, place order (303), order page.
-- Run with one connection per thread (wrk -tN -cN): wrk keeps one Lua state per thread and does
-- not say which connection a response belongs to, so each thread walks one customer at a time.
-- Written in Lua so the load generator costs almost nothing on the cores it shares with the server.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } timespec;
  int clock_gettime(int clk_id, timespec *tp);
]]
local ts = ffi.new("timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local slug = os.getenv("BENCH_SLUG") or "harbour-at-dawn"
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local step, cookie, csrf, variant, rate, token, shown, order_path, started
durations = {}  -- per-thread; read back in done()
failures = 0

local function restart()
  step, cookie, order_path, started = 1, nil, nil, now_ms()
end

function init(args)
  restart()
end

local form_headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }

local function headers(extra)
  local h = {}
  for k, v in pairs(extra or {}) do h[k] = v end
  if cookie then h["Cookie"] = cookie end
  return h
end

function request()
  if step == 1 then
    return wrk.format("GET", "/products/" .. slug, headers())
  elseif step == 2 then
    return wrk.format("POST", "/cart/add/" .. slug, headers(form_headers),
      "csrf_token=" .. csrf .. "&variant=" .. variant .. "&quantity=1")
  elseif step == 3 then
    return wrk.format("GET", "/cart", headers())
  elseif step == 4 then
    return wrk.format("GET", "/checkout", headers())
  elseif step == 5 then
    return wrk.format("POST", "/checkout", headers(form_headers),
      "csrf_token=" .. csrf .. "&name=Bench+Customer&street=1+Test+Street&postal_code=10115" ..
      "&city=Berlin&country=DE&shipping_rate=" .. rate .. "&payment_method=demo&submit=Place+order" ..
      "&checkout_token=" .. token .. "&shown_total=" .. shown .. "&shown_country=DE")
  else
    return wrk.format("GET", order_path, headers())
  end
end

local function fail()
  failures = failures + 1
  restart()
end

function response(status, hdrs, body)
  local set = hdrs["Set-Cookie"] or hdrs["set-cookie"]
  if set then cookie = set:match("^([^;]*)") end
  if step == 1 or step == 4 then
    if status ~= 200 then return fail() end
    csrf = body:match('name="csrf_token" type="hidden" value="([^"]+)"')
    if step == 1 then
      variant = body:match('name="variant" value="(%d+)" checked')
      if not (csrf and variant) then return fail() end
    else
      rate = body:match('name="shipping_rate" value="(%d+)" checked')
      -- What the page showed: the order is placed once, and only for this total.
      token = body:match('name="checkout_token" type="hidden" value="([^"]+)"')
      shown = body:match('name="shown_total" type="hidden" value="(%d+)"')
      if not (csrf and rate and token and shown) then return fail() end
    end
  elseif step == 2 then
    if status ~= 303 then return fail() end
  elseif step == 3 or step == 6 then
    if status ~= 200 then return fail() end
  elseif step == 5 then
    local location = hdrs["Location"] or hdrs["location"] or ""
    order_path = location:match("(/orders/[%w_-]+)")
    if status ~= 303 or not order_path then return fail() end
  end
  if step == 6 then
    table.insert(durations, now_ms() - started)
    restart()
  else
    step = step + 1
  end
end

function done(summary, latency, requests)
  local all, failed = {}, 0
  for _, thread in ipairs(threads) do
    for _, d in ipairs(thread:get("durations")) do table.insert(all, d) end
    failed = failed + thread:get("failures")
  end
  table.sort(all)
  local function pct(p)
    if #all == 0 then return 0 end
    return all[math.max(1, math.ceil(#all * p))]
  end
  io.write(string.format("CHECKOUTS orders=%d failed=%d p50_ms=%.1f p99_ms=%.1f\n",
    #all, failed, pct(0.5), pct(0.99)))
end
