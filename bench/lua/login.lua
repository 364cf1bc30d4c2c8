-- wrk script for bench/full.py: the login path, POST /api/v1/sms-codes then POST /api/v1/sessions, each phone
-- used once.
--
--   wrk ... -s bench/lua/login.lua URL -- CODES_DIR FIRST STRIDE
--
-- CODES_DIR: where the Aliyun stub (python -m tests.stubs.aliyun_sms --codes-dir) writes each delivered code, in
-- CODES_DIR/<phone>. Phones are "155" and 8 digits: thread t (0-based) owns the offsets FIRST + t*STRIDE up to
-- (not including) FIRST + (t+1)*STRIDE, so threads, and runs given different FIRSTs (bench.lib.data.PhoneBlocks), never share a phone.
--
-- Every request() of a thread either logs in the oldest pending phone that is ready, or asks a code for the
-- thread's next new phone (and appends it to the pending list). A phone is ready when the answer to its
-- sms-codes request has come back 2xx (matched by the X-Request-ID the server echoes; the server stores the
-- code's hash before it answers, so a sessions request cannot overtake it) and its code file exists; only the
-- first SCAN pending entries are looked at. The code file is removed once read.
--
-- response() classifies by body: "resend_after" = a code was sent, "access_token" = a login; non-2xx and 2xx
-- bodies with neither are counted. done() prints one line the benchmark parses:
--   login-lua: codes=N sessions=N non2xx=N badbody=N pending=N exhausted=N
-- (pending: phones asked for a code but not logged in when wrk stopped; exhausted: requests that found the
-- thread's phone range used up, sent as a code request for the range's last phone; must be 0).

local SCAN = 8
local codes_dir, first, stride = nil, 0, 0
local next_offset, last_offset = 0, 0
local pending = {}       -- phones asked for a code, oldest first
local answered = {}      -- phone -> true once its sms-codes answer came back 2xx
local failed = {}        -- phone -> true once its sms-codes answer was not a code
-- globals, so done() can read them with thread:get()
codes, sessions, non2xx, badbody, npending, exhausted = 0, 0, 0, 0, 0, 0

local threads = {}
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

function init(args)
  codes_dir, first, stride = args[1], tonumber(args[2]), tonumber(args[3])
  assert(codes_dir and first and stride and stride >= 1, "args: CODES_DIR FIRST STRIDE")
  next_offset = first + tid * stride     -- tid: set by setup()
  last_offset = next_offset + stride - 1
  assert(last_offset <= 99999999, "phone range beyond 155 99999999")
end

local function phone_at(offset)
  return "155" .. string.format("%08d", offset)
end

local function header(headers, name)
  for k, v in pairs(headers) do
    if k:lower() == name then return v end
  end
  return nil
end

local function ready()
  local i = 1
  while i <= #pending and i <= SCAN do
    local phone = pending[i]
    if failed[phone] then
      failed[phone] = nil
      table.remove(pending, i)
    else
      if answered[phone] then
        local path = codes_dir .. "/" .. phone
        local f = io.open(path, "r")
        if f then
          local code = f:read("*a")
          f:close()
          os.remove(path)
          answered[phone] = nil
          table.remove(pending, i)
          return phone, code
        end
      end
      i = i + 1
    end
  end
  return nil
end

function request()
  local phone, code = ready()
  if phone then
    npending = #pending
    return wrk.format("POST", "/api/v1/sessions",
      {["Content-Type"] = "application/json", ["X-Request-ID"] = "ses-" .. phone},
      '{"phone":"' .. phone .. '","code":"' .. code .. '"}')
  end
  if next_offset > last_offset then
    exhausted = exhausted + 1
    next_offset = last_offset
  end
  phone = phone_at(next_offset)
  next_offset = next_offset + 1
  table.insert(pending, phone)
  npending = #pending
  return wrk.format("POST", "/api/v1/sms-codes",
    {["Content-Type"] = "application/json", ["X-Request-ID"] = "sms-" .. phone},
    '{"phone":"' .. phone .. '"}')
end

function response(status, headers, body)
  local rid = header(headers, "x-request-id") or ""
  local sms_phone = rid:match("^sms%-(%d+)$")
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if sms_phone then failed[sms_phone] = true end
  elseif body:find('"resend_after"', 1, true) then
    codes = codes + 1
    if sms_phone then answered[sms_phone] = true else badbody = badbody + 1 end
  elseif body:find('"access_token"', 1, true) then
    sessions = sessions + 1
  else
    badbody = badbody + 1
    if sms_phone then failed[sms_phone] = true end
  end
end

function done(summary, latency, requests)
  local t = {codes = 0, sessions = 0, non2xx = 0, badbody = 0, npending = 0, exhausted = 0}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(t) do t[name] = t[name] + (thread:get(name) or 0) end
  end
  io.write(string.format("login-lua: codes=%d sessions=%d non2xx=%d badbody=%d pending=%d exhausted=%d\n",
    t.codes, t.sessions, t.non2xx, t.badbody, t.npending, t.exhausted))
end
