-- wrk script for the benchmarks (bench/full.py, bench/social.py): POST /api/v1/swipes, every request a new
-- (swiper, target) pair.
--
--   wrk ... -s bench/lua/swipes.lua URL -- TOKENS RANGES FIRST COUNT THREADS
--
-- TOKENS: one access token a line (swiper g = line g+1). RANGES: robot ids as "low high" lines (ascending).
-- FIRST, COUNT: this run's slice of the targets, as positions in that list (0-based): the benchmark gives every
-- swipe run of a session its own slice (bench.lib.data.Slices), so no pair repeats across the runs of one
-- set-up (the set-up deletes the swipers' swipes, so a new session starts afresh). THREADS: wrk's -t.
--
-- Thread t (0-based) owns swipers t, t+THREADS, ...; its requests go round-robin over them. Swiper g walks the
-- slice from offset g*COUNT/#swipers, one target per request, so the swipers start on disjoint targets (each
-- target is first read cold from MySQL) and no swiper can repeat a target until it has walked the whole slice;
-- if one would, the request is still sent but counted as "wrapped" and the benchmark fails the run.
-- Actions alternate like / dislike. done() prints one line the benchmark parses:
--   swipes-lua: generated=N ok=N non2xx=N badbody=N wrapped=N

local tokens, targets = {}, {}
local slice_lo, slice_n = 0, 0
local mine = {}          -- this thread's swiper numbers (0-based)
local starts = {}        -- per swiper: offset into the slice
local nswipers = 0
-- globals, so done() can read them with thread:get()
generated, ok, non2xx, badbody, wrapped = 0, 0, 0, 0, 0

local threads = {}
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

local function read_lines(path)
  local lines = {}
  local f = assert(io.open(path, "r"), "cannot open " .. path)
  for line in f:lines() do
    if line ~= "" then table.insert(lines, line) end
  end
  f:close()
  return lines
end

function init(args)
  local tokens_path, ranges_path = args[1], args[2]
  local first, count, nthreads = tonumber(args[3]), tonumber(args[4]), tonumber(args[5])
  assert(tokens_path and ranges_path and first and count and nthreads, "args: TOKENS RANGES FIRST COUNT THREADS")
  tokens = read_lines(tokens_path)
  for _, line in ipairs(read_lines(ranges_path)) do
    local lo, hi = line:match("^(%d+) (%d+)$")
    for id = tonumber(lo), tonumber(hi) do table.insert(targets, id) end
  end
  assert(first >= 0 and count >= 1 and first + count <= #targets,
    "slice " .. first .. "+" .. count .. " beyond the " .. #targets .. " targets")
  slice_lo, slice_n = first, count
  nswipers = #tokens
  local tid = tid  -- set by setup()
  for g = tid, nswipers - 1, nthreads do
    table.insert(mine, g)
    starts[g] = math.floor(g * slice_n / nswipers)
  end
  assert(#mine > 0, "fewer swipers than threads")
end

function request()
  local k = #mine
  local g = mine[(generated % k) + 1]
  local step = math.floor(generated / k)
  generated = generated + 1
  if step >= slice_n then wrapped = wrapped + 1 end
  local target = targets[slice_lo + ((starts[g] + step) % slice_n) + 1]
  local action = ((g + step) % 2 == 0) and "like" or "dislike"
  return wrk.format("POST", "/api/v1/swipes",
    {["Authorization"] = "Bearer " .. tokens[g + 1], ["Content-Type"] = "application/json"},
    '{"user_id":' .. target .. ',"action":"' .. action .. '"}')
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  elseif body:sub(1, 9) ~= '{"code":0' then
    badbody = badbody + 1
  else
    ok = ok + 1
  end
end

function done(summary, latency, requests)
  local t = {generated = 0, ok = 0, non2xx = 0, badbody = 0, wrapped = 0}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(t) do t[name] = t[name] + (thread:get(name) or 0) end
  end
  io.write(string.format("swipes-lua: generated=%d ok=%d non2xx=%d badbody=%d wrapped=%d\n",
    t.generated, t.ok, t.non2xx, t.badbody, t.wrapped))
end
