-- "Add to cart" under load, for wrk: each connection opens the product page once for its
-- session cookie and form token, then posts the add-to-cart form again and again with that
-- same cookie, so every POST adds one print to an empty cart (answered with 303 to the cart).
-- Run with one connection per thread (wrk -tN -cN): wrk keeps one Lua state per thread.

local slug = os.getenv("BENCH_SLUG") or "harbour-at-dawn"
local cookie, body
local threads = {}
adds = 0  -- per thread: answers 303 to an add; read back in done()

function setup(thread)
  table.insert(threads, thread)
end

function request()
  if not body then
    return wrk.format("GET", "/products/" .. slug)
  end
  return wrk.format("POST", "/cart/add/" .. slug,
    { ["Content-Type"] = "application/x-www-form-urlencoded", ["Cookie"] = cookie }, body)
end

function response(status, headers, page)
  if body then
    if status == 303 then adds = adds + 1 end
    return
  end
  local set = headers["Set-Cookie"] or headers["set-cookie"]
  local csrf = page:match('name="csrf_token" type="hidden" value="([^"]+)"')
  local variant = page:match('name="variant" value="(%d+)" checked')
  if status == 200 and set and csrf and variant then
    cookie = set:match("^([^;]*)")
    body = "csrf_token=" .. csrf .. "&variant=" .. variant .. "&quantity=1"
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("adds") end
  io.write(string.format("ADDS added=%d requests=%d\n", total, summary.requests))
end
